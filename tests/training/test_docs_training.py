"""Every command block of docs/training.md runs as written (shrunk: a few patches, one epoch).

The test reads the fenced blocks of the page and runs them in order in one working folder laid out
like a checkout (``training/`` and ``../shared`` beside it), so the page's relative paths resolve as
they do for a reader.  Commands are run through the real console scripts; the only changes are
appended ``--set`` overrides that shrink the data and epochs, and torchrun's process count cut to two
CPU processes.  A command the test does not know how to run fails it: a new command in the docs
needs a line here.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import SHARED_DATA

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "training.md"
BIN = Path(sys.executable).parent
SHRINK = [
    "train.device=cpu",
    "data.max_per_class=8",
    "data.synthetic_per_class=8",
    "ssl.epochs=1",
    "ssl.batch_size=8",
    "clustering.max_samples=24",
]
ONE_EPOCH = "train.phases=[{epochs: 1, lr: 1.0e-3}]"

# a small recipe of the user's own: real PCam patches in class folders
MY_RECIPE = """\
name: my-run
output_dir: runs
data:
  source: folders
  root: my_patches
  valid_fraction: 0.25
model:
  architecture: mobilenetv2_100
  weights: ../shared/data/weights/mobilenet_v2-b0353104.pth
  spacing_um_px: 1.0
train:
  batch_size: 8
  phases: [{epochs: 1, lr: 1.0e-3}]
"""


def blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced block, in page order."""
    return [(m.group(1), m.group(2)) for m in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.M | re.S)]


def commands(body: str) -> list[str]:
    """Shell lines of a bash block: continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", body)
    out = []
    for line in joined.splitlines():
        line = line.split(" #")[0].strip()
        if line and not line.startswith("#"):
            out.append(line)
    return out


def _copy_patches(dest: Path, per_class: int) -> None:
    for label, name in (("0", "normal"), ("1", "tumour")):
        folder = dest / name
        folder.mkdir(parents=True)
        for src in sorted((SHARED_DATA / "pcam" / "train" / label).glob("*.jpg"))[:per_class]:
            shutil.copy(src, folder / src.name)


@pytest.fixture
def reader_folder(tmp_path: Path) -> Path:
    """A working folder like a reader's checkout: training/ here, ../shared beside it."""
    if not (SHARED_DATA / "pcam").is_dir() or not (SHARED_DATA / "weights").is_dir():
        pytest.skip("real PCam patches and ImageNet weights not available")
    (tmp_path / "shared").symlink_to(SHARED_DATA.parent, target_is_directory=True)
    work = tmp_path / "checkout"
    work.mkdir()
    (work / "training").symlink_to(REPO / "training", target_is_directory=True)
    (work / "my_recipe.yaml").write_text(MY_RECIPE)
    _copy_patches(work / "my_patches", 12)
    for site, label in (("site_A", "0"), ("site_B", "1")):  # two "sites" for histo cluster
        folder = work / site
        folder.mkdir()
        for src in sorted((SHARED_DATA / "pcam" / "train" / label).glob("*.jpg"))[:20]:
            shutil.copy(src, folder / src.name)
    return work


def _run(argv: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: int = 600) -> str:
    full_env = {**os.environ, "HISTO_DEVICE": "cpu", "OMP_NUM_THREADS": "1", **(env or {})}
    result = subprocess.run(argv, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)
    said = f"{result.stdout}\n{result.stderr}"
    assert result.returncode == 0, f"{shlex.join(argv)} exited {result.returncode}:\n{said}"
    return result.stdout + result.stderr


def _shrunk(args: list[str]) -> list[str]:
    """The command's own arguments, then the shrinking overrides (later overrides win)."""
    extra = [*SHRINK] if any(a.startswith("train.phases") for a in args) else [*SHRINK, ONE_EPOCH]
    return [*args, *(x for item in extra for x in ("--set", item))]


def run_shell_line(line: str, cwd: Path) -> None:
    words = shlex.split(line)
    env = {}
    while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):
        key, _, value = words.pop(0).partition("=")
        env[key] = value
    program, args = words[0], words[1:]
    if program == "pip":  # the extras the page installs exist
        tomllib = pytest.importorskip("tomllib")  # Python 3.11+
        extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
        for spec in args[1:]:
            match = re.fullmatch(r"napari-histo\[([\w,-]+)\]", spec)
            assert match, f"docs install something other than napari-histo's extras: {spec}"
            assert set(match.group(1).split(",")) <= set(extras), f"{spec}: no such extra in pyproject.toml"
        return
    if program == "histo" and args[0] == "train":
        _run([str(BIN / "histo"), "train", *_shrunk(args[1:]), "--quiet"], cwd, env)
        return
    if program == "histo" and args[0] == "evaluate":  # as written, on 20 patches per class
        _run([str(BIN / "histo"), *args, "--max-per-class", "20", "--bootstrap", "50"], cwd, env)
        return
    if program == "python" and args[:1] == ["-m"]:  # a module of this project, as written
        _run([sys.executable, *args], cwd, env)
        return
    if program == "histo":  # other histo commands run exactly as written
        _run([str(BIN / "histo"), *args], cwd, env)
        return
    if program == "torchrun":
        i = args.index("--nproc_per_node")
        args[i + 1] = "2"  # two CPU processes stand in for the GPUs
        if "--standalone" not in args:
            args.insert(0, "--standalone")
        env.setdefault("HISTO_DDP_BACKEND", "gloo")
        _run([str(BIN / "torchrun"), *_shrunk(args), "--quiet"], cwd, env)
        return
    raise AssertionError(f"docs/training.md has a command this test does not run: {line!r}")


@pytest.mark.slow
def test_every_command_block_of_the_training_page_runs(reader_folder: Path) -> None:
    ran = {"bash": 0, "python": 0, "yaml": 0}
    for language, body in blocks(DOC.read_text()):
        if language == "bash":
            for line in commands(body):
                run_shell_line(line, reader_folder)
                ran["bash"] += 1
        elif language == "python":
            script = reader_folder / "snippet.py"
            script.write_text(body)
            out = _run([sys.executable, str(script)], reader_folder)
            assert "model" in out  # the snippet prints the model folder and its ROC-AUC
        elif language == "yaml":  # a recipe section: it must load as part of a recipe
            from training.config import load_config

            recipe = yaml.safe_load(MY_RECIPE) | yaml.safe_load(body)
            path = reader_folder / "with_section.yaml"
            path.write_text(yaml.safe_dump(recipe))
            load_config(path)
        else:
            kind = language or "plain"
            raise AssertionError(f"a {kind} block in docs/training.md is not checked: {body[:60]!r}")
        ran[language] += 1 if language != "bash" else 0
    assert ran["bash"] >= 5 and ran["python"] >= 1 and ran["yaml"] >= 1, ran
    assert list((reader_folder / "runs").glob("*/model/model.json"))
    assert (reader_folder / "clustering" / "clustering.json").exists()
