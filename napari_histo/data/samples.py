"""Sample slides: made offline (synthetic) or downloaded once into a cache.

The cache is ``$HISTO_CACHE_DIR`` when set, else the user cache directory
(``~/.cache/napari-histo`` on Linux).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from napari_histo.errors import DownloadError

__all__ = ["CMU1_SMALL_REGION", "cache_dir", "cmu_small_region_path", "fetch", "synthetic_slide_path"]

CMU1_SMALL_REGION = {
    "file": "CMU-1-Small-Region.svs",
    "url": "https://openslide.cs.cmu.edu/download/openslide-testdata/Aperio/CMU-1-Small-Region.svs",
    "sha256": "ed92d5a9f2e86df67640d6f92ce3e231419ce127131697fbbce42ad5e002c8a7",
    "licence": "CC0 (OpenSlide test data)",
}


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


def cmu_small_region_path(url: str | None = None) -> Path:
    """CMU-1-Small-Region.svs from the cache, downloaded (and checked) once."""
    sample = CMU1_SMALL_REGION
    return fetch(url or sample["url"], cache_dir() / sample["file"], sample["sha256"])


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
