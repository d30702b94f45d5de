"""Remote slides through fsspec: the real slides served by a local HTTP server read like the local files.

The server (``http.server`` on 127.0.0.1, answering range requests) counts the
bytes it sends, so the tests bound what a read downloads: opening fetches the
header blocks only, and a region fetches the blocks holding its tiles, never
the whole file.
"""

from __future__ import annotations

import contextlib
import http.server
import math
import os
import re
import threading
from pathlib import Path

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner
from conftest import shared_file

from napari_histo.cli.main import cli
from napari_histo.errors import MissingDependencyError, SlideNotFoundError, UnsupportedFormatError
from napari_histo.io import open_slide

pytest.importorskip("fsspec", reason="the remote extra is not installed")
pytest.importorskip("aiohttp", reason="the remote extra is not installed")

SLIDES = ["CMU-1-Small-Region.svs", "tcga-cr-7395-01a-01-ts1.svs", "test3-DAPI-2-387.ndpi"]


class RangeServer:
    """Serves one folder on 127.0.0.1 with ``Range: bytes=a-b`` answered by 206; counts bytes sent."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.bytes_sent = 0
        self.requests = 0
        self._lock = threading.Lock()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _file(self) -> Path | None:
                path = owner.folder / self.path.split("?", 1)[0].lstrip("/")
                if path.is_file():
                    return path
                self.send_error(404)
                return None

            def do_HEAD(self) -> None:  # http.server's method names
                path = self._file()
                if path is not None:
                    self.send_response(200)
                    self.send_header("Content-Length", str(path.stat().st_size))
                    self.send_header("Accept-Ranges", "bytes")
                    self.end_headers()

            def do_GET(self) -> None:
                path = self._file()
                if path is None:
                    return
                size = path.stat().st_size
                start, end = 0, size - 1
                match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
                if match:
                    start = int(match.group(1))
                    end = min(size - 1, int(match.group(2))) if match.group(2) else size - 1
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(end - start + 1))
                self.end_headers()
                with open(path, "rb") as fh:
                    data = os.pread(fh.fileno(), end - start + 1, start)
                self.wfile.write(data)
                with owner._lock:
                    owner.bytes_sent += len(data)
                    owner.requests += 1

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"


@contextlib.contextmanager
def serving(folder: Path):
    server = RangeServer(folder)
    thread = threading.Thread(target=server.httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
        thread.join()


@pytest.fixture(scope="module")
def server():
    with serving(shared_file("wsi", SLIDES[0]).parent) as running:
        yield running


@pytest.mark.parametrize("name", SLIDES)
def test_remote_reads_equal_local_reads_at_every_level(server, name):
    local_path = shared_file("wsi", name)
    rng = np.random.default_rng(14)
    url = f"{server.url}/{name}"
    with open_slide(local_path) as local, open_slide(url) as remote:
        assert remote.backend == "tifffile" and remote.source == url and remote.path.name == name
        for key in ("format", "vendor", "dimensions_rc", "mpp", "mpp_source", "magnification", "levels"):
            assert remote.info()[key] == local.info()[key]
        assert remote.info()["path"] == url
        for level, info in enumerate(local.level_info):
            ds = info.downsample
            rows, cols = info.shape[:2]
            for _ in range(100):
                h, w = int(rng.integers(1, min(rows, 160) + 1)), int(rng.integers(1, min(cols, 160) + 1))
                r, c = int(rng.integers(0, rows - h + 1)), int(rng.integers(0, cols - w + 1))
                origin = (math.ceil(r * ds), math.ceil(c * ds))
                np.testing.assert_array_equal(
                    remote.read_region(origin, level, (h, w)), local.read_region(origin, level, (h, w))
                )
        for key in local.associated_names:
            np.testing.assert_array_equal(remote.associated_image(key), local.associated_image(key))


def _tile_block_bound(path: Path, r: int, c: int, h: int, w: int, block: int) -> int:
    """Bytes of the distinct cache blocks holding the level-0 tiles under a region."""
    with tifffile.TiffFile(path) as tif:
        page = tif.series[0].levels[0].keyframe
        th, tw = page.chunks[:2]
        across = page.chunked[1]
        blocks: set[int] = set()
        for ty in range(r // th, (r + h - 1) // th + 1):
            for tx in range(c // tw, (c + w - 1) // tw + 1):
                offset, count = page.dataoffsets[ty * across + tx], page.databytecounts[ty * across + tx]
                blocks.update(range(offset // block, (offset + count - 1) // block + 1))
    return len(blocks) * block


@pytest.mark.parametrize("name", SLIDES)
def test_remote_reads_fetch_only_the_blocks_they_need(server, name):
    from napari_histo.io._remote import DEFAULT_BLOCK_BYTES

    path = shared_file("wsi", name)
    size = path.stat().st_size
    before = server.bytes_sent
    with open_slide(f"{server.url}/{name}") as remote:
        opened = server.bytes_sent - before
        assert 0 < opened < 0.2 * size  # the header blocks, not the file
        rows, cols = remote.dimensions
        total = opened
        for r, c in ((rows // 2, cols // 2), (10, 10), (rows - 200, cols - 300)):
            start = server.bytes_sent
            remote.read_region((r, c), 0, (128, 128))
            fetched = server.bytes_sent - start
            assert fetched <= _tile_block_bound(path, r, c, 128, 128, DEFAULT_BLOCK_BYTES)
            total += fetched
            again = server.bytes_sent
            remote.read_region((r, c), 0, (128, 128))  # cached: nothing fetched twice
            assert server.bytes_sent == again
        assert total < 0.5 * size


def test_missing_remote_file_and_non_tiff_urls(server, tmp_path):
    with pytest.raises(SlideNotFoundError, match="no such file on the server"):
        open_slide(f"{server.url}/nope.svs")
    with serving(tmp_path) as other:
        (tmp_path / "notes.svs").write_bytes(b"hello, not a slide" * 100)
        with pytest.raises(UnsupportedFormatError, match="not a TIFF file"):
            open_slide(f"{other.url}/notes.svs")


def test_cloud_urls_without_their_package_name_it():
    try:
        import gcsfs  # noqa: F401
    except ImportError:
        with pytest.raises(MissingDependencyError, match=r"needs gcsfs.*pip install gcsfs"):
            open_slide("gs://bucket/slide.svs")
    else:
        pytest.skip("gcsfs is installed")


def test_histo_info_reads_a_url(server):
    url = f"{server.url}/{SLIDES[0]}"
    result = CliRunner().invoke(cli, ["info", url, "--json"])
    assert result.exit_code == 0, result.output
    assert f'"path": "{url}"' in result.output and '"dimensions_rc": [\n    2967' in result.output


def test_napari_reader_reads_a_url(server):
    pytest.importorskip("napari")
    from napari_histo._napari.reader import get_slide_reader

    url = f"{server.url}/{SLIDES[2]}"
    reader = get_slide_reader(url)
    assert reader is not None
    [(data, kwargs, kind)] = reader(url)
    assert kind == "image" and kwargs["multiscale"] and kwargs["name"] == SLIDES[2]
    assert kwargs["metadata"]["napari_histo"]["path"] == url
    with open_slide(shared_file("wsi", SLIDES[2])) as local:
        np.testing.assert_array_equal(
            np.asarray(data[1][:300, :300]), local.read_region((0, 0), 1, (300, 300))
        )
