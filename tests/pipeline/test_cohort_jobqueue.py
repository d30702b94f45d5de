"""Cohorts on SLURM / PBS / LSF through dask-jobqueue: the cluster objects and their job scripts.

No batch system exists here, so nothing is submitted: each test builds the cluster object (which
starts only a local scheduler, no jobs) and asserts on ``cluster.job_script()`` -- the script
``sbatch`` / ``qsub`` / ``bsub`` would receive: cores, memory, walltime, queue, the GPU request and
the worker command declaring ``--resources GPU=1`` so one slide task holds one GPU.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

dask_jobqueue = pytest.importorskip("dask_jobqueue")
yaml = pytest.importorskip("yaml")

import dask  # noqa: E402

DOCS = Path(__file__).resolve().parents[2] / "docs" / "cohorts.md"

# Building a cluster starts a scheduler in this process; a second dashboard on :8787 would warn.
QUIET = {"dashboard_address": ":0"}

pytestmark = [
    # dask-jobqueue/distributed may note that a port is taken or that a scheduler closed with
    # no workers ever having joined; neither concerns the job script.
    pytest.mark.filterwarnings("ignore:Port .* is already in use:UserWarning"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
]


def _build(cls, **kwargs):
    return cls(scheduler_options=QUIET, **kwargs)


def _worker_line(script: str) -> str:
    lines = [line for line in script.splitlines() if "distributed.cli.dask_worker" in line]
    assert len(lines) == 1, script
    return lines[0]


def test_slurm_job_script_gpu_worker(tmp_path):
    cluster = _build(
        dask_jobqueue.SLURMCluster,
        cores=8,
        processes=1,
        memory="64GB",
        walltime="12:00:00",
        queue="gpu",
        job_extra_directives=["--gres=gpu:1"],
        worker_extra_args=["--resources", "GPU=1"],
        log_directory=str(tmp_path / "logs"),
    )
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert "#SBATCH -p gpu" in script
    assert "#SBATCH --cpus-per-task=8" in script
    assert re.search(r"#SBATCH --mem=\d+G", script)
    assert "#SBATCH -t 12:00:00" in script
    assert "#SBATCH --gres=gpu:1" in script
    worker = _worker_line(script)
    assert "--resources GPU=1" in worker
    assert "--nthreads 8" in worker
    assert "--nanny" in worker  # the nanny restarts a dead worker process; the scheduler retries its slide


def test_pbs_job_script_gpu_worker():
    cluster = _build(
        dask_jobqueue.PBSCluster,
        cores=8,
        processes=1,
        memory="64GB",
        walltime="12:00:00",
        queue="gpu",
        resource_spec="select=1:ncpus=8:ngpus=1:mem=64GB",
        worker_extra_args=["--resources", "GPU=1"],
    )
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert "#PBS -q gpu" in script
    assert "#PBS -l select=1:ncpus=8:ngpus=1:mem=64GB" in script
    assert "#PBS -l walltime=12:00:00" in script
    worker = _worker_line(script)
    assert "--resources GPU=1" in worker
    assert "--nthreads 8" in worker


def test_lsf_job_script_gpu_worker():
    cluster = _build(
        dask_jobqueue.LSFCluster,
        cores=8,
        processes=1,
        memory="64GB",
        walltime="12:00",
        queue="gpu",
        job_extra_directives=['-gpu "num=1"'],
        worker_extra_args=["--resources", "GPU=1"],
    )
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert "#BSUB -q gpu" in script
    assert "#BSUB -n 8" in script
    assert re.search(r"#BSUB -M \d+", script)
    assert "#BSUB -W 12:00" in script
    assert '#BSUB -gpu "num=1"' in script
    worker = _worker_line(script)
    assert "--resources GPU=1" in worker


def _docs_jobqueue_yaml() -> dict:
    text = DOCS.read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(jobqueue:.*?)```", text, flags=re.S)
    assert blocks, "docs/cohorts.md has no ```yaml jobqueue: block"
    return yaml.safe_load(blocks[0])


def test_docs_jobqueue_yaml_makes_the_documented_slurm_job(tmp_path):
    """The example ~/.config/dask/jobqueue.yaml of docs/cohorts.md configures a GPU worker per job."""
    slurm = _docs_jobqueue_yaml()["jobqueue"]["slurm"]
    slurm["log-directory"] = str(tmp_path / "logs")  # dask-jobqueue creates it: not on /shared here
    # key by key, over dask-jobqueue's own defaults, as a file in ~/.config/dask/ would be merged
    with dask.config.set({f"jobqueue.slurm.{key}": value for key, value in slurm.items()}):
        cluster = _build(dask_jobqueue.SLURMCluster)
        try:
            script = cluster.job_script()
        finally:
            cluster.close()
    assert f"#SBATCH -p {slurm['queue']}" in script
    assert f"#SBATCH --cpus-per-task={slurm['cores']}" in script
    assert f"#SBATCH -t {slurm['walltime']}" in script
    assert "#SBATCH --gres=gpu:1" in script
    assert "--resources GPU=1" in _worker_line(script)


def test_make_client_builds_the_jobqueue_cluster(monkeypatch):
    """``make_client(jobqueue="slurm", ...)`` passes its kwargs to SLURMCluster, adds the GPU resource
    to the worker command and asks for ``workers`` jobs (``scale`` is stubbed: no sbatch here)."""
    cohort = pytest.importorskip("napari_histo.pipeline.cohort")
    asked: list[int] = []
    monkeypatch.setattr(
        dask_jobqueue.SLURMCluster, "scale", lambda self, n=None, jobs=0, **kw: asked.append(jobs)
    )
    client, cluster = cohort.make_client(
        workers=3,
        gpus=1,
        jobqueue="slurm",
        jobqueue_kwargs={
            "cores": 4,
            "processes": 1,
            "memory": "32GB",
            "walltime": "01:00:00",
            "queue": "gpu",
            "job_extra_directives": ["--gres=gpu:1"],
        },
        dashboard=False,
    )
    try:
        assert isinstance(cluster, dask_jobqueue.SLURMCluster)
        assert asked == [3]
        script = cluster.job_script()
        assert "#SBATCH --gres=gpu:1" in script
        assert "#SBATCH -p gpu" in script
        assert "#SBATCH -t 01:00:00" in script
        assert "--resources GPU=1" in _worker_line(script)
    finally:
        client.close()
        cluster.close()
