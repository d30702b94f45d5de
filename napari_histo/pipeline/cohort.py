"""Cohorts: one slide job over many slides, serially or on Dask distributed (local, remote, SLURM/PBS/LSF).

:func:`run_slide_task` is *the* per-slide task: it opens the slide itself (no
open reader crosses a process boundary), runs one pipeline verb, writes its
outputs atomically, skips a slide whose outputs are finished (so a rerun only
does failed and missing slides) and turns a bad slide into a ``"failed"``
:class:`SlideOutcome` with a one-line error instead of raising.  ``histo predict
--shard i/n`` (the zero-dependency path) and :func:`run_cohort` (Dask) both run it.

:func:`run_cohort` submits one task per slide to a ``distributed.Client`` (made by
:func:`make_client`), or runs them in this process without one, yields one
:class:`~napari_histo.core.progress.Progress` per finished slide and keeps
``cohort.csv`` and ``cohort.md`` (per-slide status, tiles, seconds, errors,
outputs; totals) up to date in the output folder after every slide.

``distributed`` and ``dask_jobqueue`` are imported inside the functions that use
them, so importing this module needs neither.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import math
import os
import sys
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari_histo.core.progress import Progress
from napari_histo.errors import HistoError, InvalidParameterError, SlideNotFoundError
from napari_histo.io import SLIDE_EXTENSIONS
from napari_histo.io._remote import is_url
from napari_histo.io.files import source_name, write_bytes_atomic

if TYPE_CHECKING:
    import distributed

    from napari_histo.pipeline.model import ModelHandle

__all__ = [
    "JOBS",
    "CohortSlide",
    "SlideOutcome",
    "make_client",
    "read_cohort",
    "run_cohort",
    "run_slide_task",
    "slide_task",
    "task_outputs",
]

#: the slide jobs a cohort can run
JOBS = ("predict", "tiles", "stain", "info", "embed")
#: the report files :func:`run_cohort` keeps in the output folder
REPORT_CSV, REPORT_MD = "cohort.csv", "cohort.md"
REPORT_COLUMNS = ("slide", "status", "tiles", "seconds", "error", "outputs", "mpp", "label", "patient")


@dataclass(frozen=True)
class CohortSlide:
    """One slide of a cohort: its path and, from a manifest, its µm/px, label and patient."""

    path: Path | str  # a local file or folder, or a URL (kept as given)
    mpp: float | None = None
    label: str | None = None
    patient: str | None = None


@dataclass(frozen=True)
class SlideOutcome:
    """What one slide task did."""

    slide: str  # the slide path as given
    status: str  # "done" | "skipped" (finished outputs existed) | "failed"
    tiles: int
    seconds: float
    error: str  # one line, empty unless failed
    outputs: dict[str, str] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------- cohort


def _is_slide_name(name: str) -> bool:
    lower = name.lower()
    return any(lower.endswith(ext) for ext in SLIDE_EXTENSIONS)


def read_cohort(source: str | os.PathLike[str]) -> list[CohortSlide]:
    """The slides of a cohort given as a folder, a glob (``"cohort/*.svs"``) or a CSV manifest.

    A folder gives the slide files directly in it (known extensions), sorted; a
    manifest has a ``slide`` (or ``path``) column and optional ``mpp``, ``label``
    and ``patient`` columns, with paths relative to the CSV file (or URLs, or folders
    such as DICOM and OME-Zarr slides).  A bad manifest
    raises :class:`InvalidParameterError` naming the row.
    """
    text = os.fspath(source)
    path = Path(text)
    if path.is_dir():
        slides = sorted(p for p in path.iterdir() if p.is_file() and _is_slide_name(p.name))
        if not slides:
            known = ", ".join(SLIDE_EXTENSIONS[:4])
            raise InvalidParameterError(f"{text}: the folder holds no slide files ({known}, ...)")
        return [CohortSlide(p) for p in slides]
    if path.is_file() and path.suffix.lower() == ".csv":
        return _read_manifest(path)
    if path.is_file():
        return [CohortSlide(path)]
    if glob.has_magic(text):
        matches = sorted(Path(p) for p in glob.glob(text) if Path(p).is_file())
        if not matches:
            raise SlideNotFoundError(f"{text}: the pattern matches no file")
        return [CohortSlide(p) for p in matches]
    raise SlideNotFoundError(
        f"{text}: not found; give a folder of slides, a pattern such as 'cohort/*.svs' (quoted) or a CSV "
        "manifest with a 'slide' column"
    )


def _read_manifest(path: Path) -> list[CohortSlide]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            columns = [c.strip().lower() for c in reader.fieldnames or []]
            rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InvalidParameterError(f"{path}: not a readable CSV manifest ({exc})") from exc
    key = "slide" if "slide" in columns else "path" if "path" in columns else None
    if key is None:
        raise InvalidParameterError(
            f"{path}: the manifest needs a 'slide' (or 'path') column naming each slide file; its columns "
            f"are {', '.join(columns) or 'none'}"
        )
    slides = []
    for number, raw in enumerate(rows, start=2):  # row 1 is the header
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items() if isinstance(v, str)}
        if not any(row.values()):
            continue
        where = f"{path}, row {number}"
        if not row.get(key):
            raise InvalidParameterError(f"{where}: the '{key}' cell is empty; name the slide file")
        slide: Path | str = row[key]
        if not is_url(row[key]):  # a URL (https://, s3://, a DICOMweb series) is kept as written
            local = Path(row[key]).expanduser()
            slide = local if local.is_absolute() else path.parent / local
        mpp = None
        if row.get("mpp"):
            try:
                mpp = float(row["mpp"])
            except ValueError:
                mpp = math.nan
            if not (math.isfinite(mpp) and 0.01 <= mpp <= 1000):
                raise InvalidParameterError(
                    f"{where}: mpp {row['mpp']!r} is not a µm/px between 0.01 and 1000 (e.g. 0.25 for 40x); "
                    "leave it empty to use the file's"
                )
        slides.append(CohortSlide(slide, mpp, row.get("label") or None, row.get("patient") or None))
    if not slides:
        raise InvalidParameterError(f"{path}: the manifest lists no slides")
    return slides


# ------------------------------------------------------------------------------------------- one slide task


def _stem(path: Path | str) -> str:
    from napari_histo.pipeline.tiles import slide_stem

    return slide_stem(path)


def task_outputs(job: str, slide_path: Path | str, out_dir: Path) -> dict[str, Path]:
    """The files ``job`` writes for one slide under ``out_dir``; ``"done"`` is the one written last."""
    if job == "predict":
        from napari_histo.pipeline.slide_job import outputs_for

        outputs = outputs_for(slide_path, out_dir)
        return {**outputs, "done": outputs["summary"]}
    if job == "embed":
        from napari_histo.pipeline.embed import embeddings_path

        table = embeddings_path(slide_path, out_dir)
        return {"embeddings": table, "done": table}
    stem = _stem(slide_path)
    if job == "tiles":
        return {"tiles": out_dir / stem, "done": out_dir / f"{stem}.tiles.json"}
    if job == "stain":
        return {"done": out_dir / f"{stem}.stain.json"}
    if job == "info":
        return {"done": out_dir / f"{stem}.info.json"}
    raise InvalidParameterError(f"unknown cohort job {job!r}; choose one of {', '.join(JOBS)}")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, OSError) and not isinstance(exc, HistoError) and exc.filename and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}"
    return text


def _expected_failure(exc: BaseException) -> bool:
    if isinstance(exc, (HistoError, OSError, MemoryError)):
        return True
    bridge = sys.modules.get("qupath_bridge.errors")
    return bridge is not None and isinstance(exc, bridge.QuPathBridgeError)


def _remove_partial_files(outputs: dict[str, Path]) -> None:
    """Delete ``*.part`` files a killed earlier attempt left beside (or inside) this slide's outputs."""
    for path in outputs.values():
        for part in path.parent.glob(glob.escape(path.name) + "*.part"):
            part.unlink(missing_ok=True)
        if path.is_dir():
            for part in path.rglob("*.part"):
                part.unlink(missing_ok=True)


_MODELS: dict[tuple[str, str], ModelHandle] = {}


def _model(options: dict[str, Any]) -> ModelHandle:
    """The model of ``options`` (a handle, a directory or a built-in name), resolved once per process."""
    from napari_histo.pipeline.model import ModelHandle, resolve_model

    model, device = options.get("model"), str(options.get("device", "auto"))
    if isinstance(model, ModelHandle):
        return model
    if model is None:
        raise InvalidParameterError("the predict job needs a model: --model NAME_OR_DIR")
    key = (os.fspath(model), device)
    if key not in _MODELS:
        _MODELS[key] = resolve_model(model, device)
    return _MODELS[key]


def _worker_device(options: dict[str, Any]) -> str:
    """The device of this task: on a Dask GPU worker, the GPU of its worker index (one worker per GPU)."""
    device = str(options.get("device", "auto"))
    gpus = int(options.get("gpus") or 0)
    if gpus > 0 and device in ("auto", "cuda"):
        try:
            from distributed import get_worker

            name = get_worker().name
        except (ImportError, ValueError):
            return device
        if isinstance(name, int) or str(name).isdigit():
            return f"cuda:{int(name) % gpus}"
    return device


def run_slide_task(
    job: str,
    slide: CohortSlide,
    out_dir: Path,
    options: dict[str, Any],
    *,
    on_progress: Callable[[Any], None] | None = None,
    raise_errors: bool = False,
) -> SlideOutcome:
    """Run ``job`` (one of :data:`JOBS`) on one slide into ``out_dir``; never raises for a bad slide.

    Opens the slide itself, skips it when its finished outputs exist (``"skipped"``),
    writes every output atomically and returns a :class:`SlideOutcome`; a
    :class:`~napari_histo.errors.HistoError`, a ``qupath_bridge`` error or an OS error
    becomes ``status="failed"`` with a one-line error (or is raised with ``raise_errors``,
    as ``histo predict`` does).  ``on_progress`` gets the verb's progress items.

    ``options``: ``slide_mpp``, ``overwrite``; predict: ``model`` (name, directory or
    handle), ``device``, ``batch_size``, ``workers``, ``compile``, ``min_tissue``, ``stain``,
    ``stain_ref``; tiles: ``mpp``, ``tile_px``, ``overlap_px``, ``min_tissue``,
    ``tissue_method``, ``format``, ``workers``; stain: ``method`` (macenko, vahadane),
    ``fit_mpp``.
    """
    from napari_histo.core.progress import run_to_end

    return run_to_end(slide_task(job, slide, out_dir, options, raise_errors=raise_errors), on_progress)


def slide_task(
    job: str, slide: CohortSlide, out_dir: Path, options: dict[str, Any], *, raise_errors: bool = False
) -> Generator[Any, None, SlideOutcome]:
    """:func:`run_slide_task` as a long verb: yields the job's progress items, returns the outcome."""
    if job not in JOBS:
        raise InvalidParameterError(f"unknown cohort job {job!r}; choose one of {', '.join(JOBS)}")
    start = time.perf_counter()
    out_dir = Path(out_dir)
    path = slide.path if is_url(slide.path) else Path(slide.path)
    outputs = task_outputs(job, path, out_dir)
    shown = {k: str(v) for k, v in outputs.items() if k != "done"} or {job: str(outputs["done"])}
    slide_mpp = slide.mpp if slide.mpp is not None else options.get("slide_mpp")
    overwrite = bool(options.get("overwrite", False))
    try:
        _remove_partial_files(outputs)
        if job == "predict":
            status, tiles = yield from _predict(path, out_dir, options, slide_mpp, overwrite)
        elif job == "embed":
            from napari_histo.pipeline.embed import embed_task

            device = _worker_device(options)
            status, tiles = yield from embed_task(path, out_dir, options, slide_mpp, overwrite, device)
        elif outputs["done"].exists() and not overwrite and _same_settings(outputs["done"], job, options):
            status, tiles = "skipped", int(_read_json(outputs["done"]).get("tiles", 0))
        else:
            out_dir.mkdir(parents=True, exist_ok=True)
            tiles = yield from _VERBS[job](path, outputs, options, slide_mpp, overwrite)
            status = "done"
    except Exception as exc:
        if raise_errors or not _expected_failure(exc):
            raise
        return SlideOutcome(str(slide.path), "failed", 0, time.perf_counter() - start, _one_line(exc), shown)
    return SlideOutcome(str(slide.path), status, tiles, time.perf_counter() - start, "", shown)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _job_settings(job: str, options: dict[str, Any]) -> dict[str, Any]:
    keys = {
        "tiles": ("mpp", "tile_px", "overlap_px", "min_tissue", "tissue_method", "format"),
        "stain": ("method", "fit_mpp"),
        "info": (),
    }[job]
    return {k: options.get(k) for k in keys}


def _same_settings(done: Path, job: str, options: dict[str, Any]) -> bool:
    """A finished record made with these settings (else the job runs again and the verb decides)."""
    return _read_json(done).get("settings") == _job_settings(job, options)


def _predict(
    path: Path | str,
    out_dir: Path,
    options: dict[str, Any],
    slide_mpp: float | None,
    overwrite: bool,
) -> Generator[Any, None, tuple[str, int]]:
    from napari_histo.models.engine import InferenceConfig
    from napari_histo.pipeline.slide_job import SlideJob, run_slide_job

    device = _worker_device(options)
    config = InferenceConfig(
        device=device,
        batch_size=int(options.get("batch_size", 128)),
        workers=int(options.get("workers", 4)),
        compile=bool(options.get("compile", False)),
    )
    stain_ref = options.get("stain_ref")
    job = SlideJob(
        path,
        out_dir,
        config,
        float(options.get("min_tissue", 0.5)),
        slide_mpp,
        options.get("stain"),
        None if stain_ref is None else Path(stain_ref),
        overwrite,
        ome_zarr=bool(options.get("ome_zarr")),
        backend=str(options.get("backend") or "auto"),
    )
    summary = yield from run_slide_job(job, _model({**options, "device": device}))
    return ("skipped" if summary.get("skipped") else "done"), int(summary.get("n_tiles", 0))


Verb = Callable[
    ["Path | str", dict[str, Path], dict[str, Any], "float | None", bool], Generator[Any, None, int]
]


def _record(done: Path, job: str, options: dict[str, Any], **extra: Any) -> None:
    record = {"job": job, "settings": _job_settings(job, options), **extra}
    write_bytes_atomic(done, (json.dumps(record, indent=2) + "\n").encode("utf-8"))


def _tiles(
    path: Path | str,
    outputs: dict[str, Path],
    options: dict[str, Any],
    slide_mpp: float | None,
    overwrite: bool,
) -> Generator[Any, None, int]:
    from napari_histo.pipeline.session import open_session
    from napari_histo.pipeline.tiles import export_slide_tiles

    if options.get("mpp") is None:
        raise InvalidParameterError("the tiles job needs the µm/px of the patches: --mpp (e.g. 0.5)")
    with open_session(path, slide_mpp, on_error="raise") as session:
        export = yield from export_slide_tiles(
            session,
            outputs["tiles"],
            target_mpp=float(options["mpp"]),
            tile_px=int(options.get("tile_px", 224)),
            overlap_px=int(options.get("overlap_px", 0)),
            min_tissue=float(options.get("min_tissue", 0.5)),
            tissue_method=options.get("tissue_method", "hsv"),
            image_format=options.get("format", "png"),
            workers=int(options.get("workers", 4)),
            overwrite=overwrite,
        )
    tiles = len(export.grid)
    _record(outputs["done"], "tiles", options, slide=source_name(path), tiles=tiles, grid_tiles=export.total)
    return tiles


def _stain(
    path: Path | str,
    outputs: dict[str, Path],
    options: dict[str, Any],
    slide_mpp: float | None,
    overwrite: bool,
) -> Generator[Any, None, int]:
    from napari_histo.pipeline.session import open_session
    from napari_histo.pipeline.stain import DEFAULT_FIT_MPP, fit_stain_on_slide

    yield Progress(0, 1, f"{source_name(path)}: fitting the stain")
    with open_session(path, slide_mpp, on_error="raise") as session:
        params = fit_stain_on_slide(
            session,
            options.get("method") or "macenko",
            fit_mpp=float(options.get("fit_mpp") or DEFAULT_FIT_MPP),
        )
    record = json.loads(params.to_json())
    _record(outputs["done"], "stain", options, slide=source_name(path), tiles=0, stain=record)
    yield Progress(1, 1, f"{source_name(path)}: stain fitted")
    return 0


def _info(
    path: Path | str,
    outputs: dict[str, Path],
    options: dict[str, Any],
    slide_mpp: float | None,
    overwrite: bool,
) -> Generator[Any, None, int]:
    from napari_histo.io import open_slide

    yield Progress(0, 1, f"{source_name(path)}: reading its metadata")
    with open_slide(path, mpp=slide_mpp) as opened:
        info = opened.info()
    _record(outputs["done"], "info", options, slide=source_name(path), tiles=0, info=info)
    yield Progress(1, 1, f"{source_name(path)}: done")
    return 0


_VERBS: dict[str, Verb] = {"tiles": _tiles, "stain": _stain, "info": _info}


# ------------------------------------------------------------------------------------------------- clusters


def default_workers(cpus: int | None = None) -> int:
    """Worker processes for a local cohort: a quarter of the CPUs (each slide job decodes with threads)."""
    cpus = cpus or os.cpu_count() or 1
    return max(1, min(cpus // 4, 16))


_JOBQUEUE = {"slurm": "SLURMCluster", "pbs": "PBSCluster", "lsf": "LSFCluster"}


def make_client(
    scheduler: str | None = None,
    *,
    workers: int | None = None,
    threads_per_worker: int = 1,
    gpus: int = 0,
    jobqueue: str | None = None,
    jobqueue_kwargs: dict[str, Any] | None = None,
    dashboard: bool = True,
) -> tuple[distributed.Client, Any]:
    """A Dask client and the cluster it started (``None`` for a running scheduler).

    ``scheduler`` ``None``: a local cluster of worker processes (``workers``, else a
    quarter of the CPUs; with ``gpus``, one worker per GPU declaring the resource
    ``GPU=1``).  ``"tcp://host:8786"``: connect to a running scheduler.  ``jobqueue``
    ``"slurm"``, ``"pbs"`` or ``"lsf"``: a ``dask_jobqueue`` cluster made with
    ``jobqueue_kwargs`` (cores, memory, queue, account, walltime, ...), scaled to
    ``workers`` jobs (default 1).
    """
    from napari_histo.errors import MissingDependencyError

    try:
        import distributed
    except ImportError as exc:
        raise MissingDependencyError(
            "cohorts on Dask need the 'distributed' package: pip install distributed"
        ) from exc
    if scheduler is not None and jobqueue is not None:
        raise InvalidParameterError("give either a scheduler address or a jobqueue system, not both")
    if scheduler is not None:
        return distributed.Client(scheduler), None
    if jobqueue is not None:
        kind = jobqueue.lower()
        if kind not in _JOBQUEUE:
            raise InvalidParameterError(f"jobqueue {jobqueue!r}: choose one of {', '.join(_JOBQUEUE)}")
        try:
            import dask_jobqueue
        except ImportError as exc:
            raise MissingDependencyError(
                f"--jobqueue {kind} needs the 'dask-jobqueue' package: pip install dask-jobqueue"
            ) from exc
        kwargs = dict(jobqueue_kwargs or {})
        if gpus > 0:
            kwargs.setdefault("worker_extra_args", []).extend(["--resources", f"GPU={gpus}"])
        if not dashboard:
            kwargs.setdefault("scheduler_options", {}).update(dashboard=False, dashboard_address=":0")
        cluster = getattr(dask_jobqueue, _JOBQUEUE[kind])(**kwargs)
        cluster.scale(jobs=workers or 1)
        return distributed.Client(cluster), cluster
    local: dict[str, Any] = {
        "processes": True,
        "threads_per_worker": threads_per_worker,
        "dashboard_address": ":8787" if dashboard else None,
    }
    if not dashboard:  # the scheduler's HTTP server (health, metrics) on a free port, not a taken 8787
        local["scheduler_kwargs"] = {"dashboard_address": ":0"}
    if gpus > 0:
        local.update(n_workers=gpus, resources={"GPU": 1})
    else:
        local["n_workers"] = workers or default_workers()
    cluster = distributed.LocalCluster(**local)
    try:
        return distributed.Client(cluster), cluster
    except BaseException:
        cluster.close()
        raise


# ---------------------------------------------------------------------------------------------------- cohort


def run_cohort(
    job: str,
    slides: list[CohortSlide],
    out_dir: Path,
    options: dict[str, Any],
    *,
    client: distributed.Client | None = None,
    retries: int = 2,
    gpu: bool = False,
    report_every_s: float = 5.0,
) -> Generator[Progress, None, list[SlideOutcome]]:
    """Run ``job`` on every slide; yields a :class:`Progress` per finished slide; returns outcomes in order.

    Without ``client`` the tasks run one after the other in this process; with one,
    each slide is one task (retried ``retries`` times; a task whose worker dies is
    rescheduled by Dask), holding one ``GPU`` resource when ``gpu``.  ``cohort.csv``
    and ``cohort.md`` in ``out_dir`` are rewritten as slides finish, at most every
    ``report_every_s`` seconds (one write of a 10,000-slide report takes ~90 ms), and
    at the end; each slide's own outputs are its record of being done.  A rerun
    does only the failed and missing slides: finished ones come back ``"skipped"``.
    """
    if job not in JOBS:
        raise InvalidParameterError(f"unknown cohort job {job!r}; choose one of {', '.join(JOBS)}")
    out_dir = Path(out_dir)
    _check_distinct_outputs(job, slides, out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    total = len(slides)
    outcomes: dict[int, SlideOutcome] = {}
    started = time.perf_counter()
    written = [started - report_every_s]  # when the report was last written

    def finished(index: int, outcome: SlideOutcome) -> Progress:
        outcomes[index] = outcome
        now = time.perf_counter()
        if now - written[0] >= report_every_s or len(outcomes) == total:
            write_report(out_dir, slides, outcomes, now - started)
            written[0] = now
        name = Path(outcome.slide).name
        return Progress(len(outcomes), total, f"{name}: {outcome.status}")

    yield Progress(0, total, f"{total:,} slides")
    if client is None:
        for index, slide in enumerate(slides):
            yield finished(index, run_slide_task(job, slide, out_dir, options))
    else:
        yield from _run_on_client(job, slides, out_dir, options, client, retries, gpu, finished)
    return [outcomes[i] for i in range(total)]


def _run_on_client(
    job: str,
    slides: list[CohortSlide],
    out_dir: Path,
    options: dict[str, Any],
    client: distributed.Client,
    retries: int,
    gpu: bool,
    finished: Callable[[int, SlideOutcome], Progress],
) -> Generator[Progress, None, None]:
    from distributed import as_completed

    extra: dict[str, Any] = {"resources": {"GPU": 1}} if gpu else {}
    futures = {
        client.submit(
            run_slide_task, job, slide, out_dir, options, pure=False, retries=retries, **extra
        ): index
        for index, slide in enumerate(slides)
    }  # fmt: skip
    try:
        for future in as_completed(futures):
            index = futures[future]
            try:
                outcome = future.result()
            except Exception as exc:  # noqa: BLE001 - a bug in the task, or a task whose workers kept dying
                outcome = SlideOutcome(str(slides[index].path), "failed", 0, 0.0, _one_line(exc), {})
            yield finished(index, outcome)
    finally:
        for future in futures:
            future.release()


def _check_distinct_outputs(job: str, slides: list[CohortSlide], out_dir: Path) -> None:
    seen: dict[Path, Path] = {}
    for slide in slides:
        done = task_outputs(job, Path(slide.path), out_dir)["done"]
        if done in seen and Path(seen[done]) != Path(slide.path):
            raise InvalidParameterError(
                f"{seen[done]} and {slide.path} would write the same outputs ({done.name}) in {out_dir}: "
                "rename one, or run them into separate folders"
            )
        seen[done] = Path(slide.path)


def write_report(
    out_dir: Path, slides: list[CohortSlide], outcomes: dict[int, SlideOutcome], elapsed_s: float
) -> None:
    """Write ``cohort.csv`` (a row per slide, ``pending`` until it ends) and ``cohort.md``, atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, REPORT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    counts = {"done": 0, "skipped": 0, "failed": 0, "pending": 0}
    tiles = 0
    for index, slide in enumerate(slides):
        outcome = outcomes.get(index)
        status = outcome.status if outcome else "pending"
        counts[status] = counts.get(status, 0) + 1
        tiles += outcome.tiles if outcome else 0
        writer.writerow({
            "slide": str(slide.path), "status": status, "tiles": outcome.tiles if outcome else "",
            "seconds": f"{outcome.seconds:.2f}" if outcome else "", "error": outcome.error if outcome else "",
            "outputs": json.dumps(outcome.outputs) if outcome else "",
            "mpp": "" if slide.mpp is None else slide.mpp,
            "label": slide.label or "", "patient": slide.patient or "",
        })  # fmt: skip
    write_bytes_atomic(out_dir / REPORT_CSV, buffer.getvalue().encode("utf-8"))
    finished = len(outcomes)
    rate = f"{finished / elapsed_s:.2f} slides/s" if elapsed_s > 0 and finished else "-"
    lines = [
        "# Cohort report",
        "",
        f"{len(slides):,} slides: {counts['done']:,} done, {counts['skipped']:,} skipped, "
        f"{counts['failed']:,} failed, {counts['pending']:,} pending; {tiles:,} tiles; "
        f"{elapsed_s:.1f} s ({rate}).",
        "",
        "| slide | status | tiles | seconds | error |",
        "|---|---|---:|---:|---|",
    ]
    for index, slide in enumerate(slides):
        outcome = outcomes.get(index)
        error = (outcome.error if outcome else "").replace("|", "\\|")
        cells = (
            Path(slide.path).name, outcome.status if outcome else "pending",
            f"{outcome.tiles:,}" if outcome else "", f"{outcome.seconds:.2f}" if outcome else "", error,
        )  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    write_bytes_atomic(out_dir / REPORT_MD, ("\n".join(lines) + "\n").encode("utf-8"))
