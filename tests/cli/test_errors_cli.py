"""The top-level handler: one line and an exit code per kind of failure, tracebacks only for bugs."""

from __future__ import annotations

import errno
import logging
import re
import threading
import warnings
from pathlib import Path

import click
import pytest

import qupath_bridge as qb
from napari_histo.cli._report import (
    EXIT_BUG,
    EXIT_ENVIRONMENT,
    EXIT_INPUT,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    describe_failure,
)
from napari_histo.cli.main import main, run_command
from napari_histo.errors import (
    CorruptSlideError,
    DeviceUnavailableError,
    InvalidParameterError,
    MemoryBudgetError,
    NoTissueError,
)
from napari_histo.io.files import write_bytes_atomic


def raising(exc: BaseException) -> click.Command:
    @click.command()
    def command() -> None:
        raise exc

    return command


def run(command: click.Command, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as ended:
        run_command(command, list(args), "histo")
    code = ended.value.code
    return (code if isinstance(code, int) else 1), capsys.readouterr().err


@pytest.mark.parametrize(
    ("exc", "code", "text"),
    [
        (InvalidParameterError("--x must be positive, got -1"), EXIT_USAGE, "--x must be positive"),
        (CorruptSlideError("s.svs: truncated; copy it again"), EXIT_INPUT, "s.svs: truncated"),
        (NoTissueError("no tissue"), EXIT_INPUT, "no tissue"),
        (DeviceUnavailableError("no CUDA"), EXIT_ENVIRONMENT, "no CUDA"),
        (MemoryBudgetError("needs 9 GiB"), EXIT_ENVIRONMENT, "needs 9 GiB"),
        (MemoryError("Unable to allocate 3 GiB"), EXIT_ENVIRONMENT, "not enough memory.*3 GiB"),
        (qb.GeoJSONError("feature 0: bad"), EXIT_INPUT, "feature 0: bad"),
        (OSError(errno.ENOSPC, "No space left on device", "/out/a.png.part"), EXIT_ENVIRONMENT,
         r"no space left on the disk of /out \(writing a\.png\).*--out"),
        (OSError(errno.EROFS, "Read-only file system", "/ro/x.png"), EXIT_ENVIRONMENT, r"/ro is on a read"),
        (OSError(errno.EACCES, "Permission denied", "/x/y"), EXIT_ENVIRONMENT, r"permission denied: /x/y"),
        (OSError(errno.ENOTDIR, "Not a directory", "f/t"), EXIT_INPUT, r"f/t: a part of this path is a file"),
        (OSError(errno.EISDIR, "Is a directory", "d"), EXIT_INPUT, r"d is a folder where a file is needed"),
        (OSError(errno.ENOENT, "No such file", "gone"), EXIT_INPUT, r"gone: no such file or folder"),
        (OSError(errno.ELOOP, "Too many levels", "loop"), EXIT_INPUT, r"loop: its symbolic links form"),
        (OSError(errno.EMFILE, "Too many open files"), EXIT_ENVIRONMENT, r"fewer --workers"),
        (OSError("cannot identify image file"), EXIT_INPUT, r"cannot identify image file"),
    ],
)  # fmt: skip
def test_expected_failures_are_one_line_with_their_exit_code(exc, code, text, capsys):
    failure = describe_failure(exc)
    assert failure is not None and failure.code == code
    got, err = run(raising(exc), capsys)
    assert got == code
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert re.search(text, lines[0]), lines[0]
    assert "Traceback" not in err


def test_a_full_disk_under_another_error_is_still_a_full_disk(capsys):
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device", "/out/x.zarr/c/0")
        except OSError as inner:
            raise RuntimeError("chunk write failed") from inner
    except RuntimeError as outer:
        exc = outer
    code, err = run(raising(exc), capsys)
    assert code == EXIT_ENVIRONMENT and "no space left on the disk of /out/x.zarr/c" in err


def test_a_bug_keeps_its_traceback_and_says_how_to_report_it(capsys):
    code, err = run(raising(ZeroDivisionError("division by zero")), capsys)
    assert code == EXIT_BUG
    assert "Traceback (most recent call last)" in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: unexpected ZeroDivisionError: division by zero")
    assert "bug in napari-histo" in last and "report it" in last


def test_debug_shows_the_traceback_of_an_expected_error(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as ended:
        main(["--debug", "info", "nope.svs"])
    err = capsys.readouterr().err
    assert ended.value.code == EXIT_INPUT
    assert "Traceback (most recent call last)" in err and err.strip().splitlines()[-1].startswith("error: ")
    with pytest.raises(SystemExit):  # not sticky: the next command is one line again
        main(["info", "nope.svs"])
    assert "Traceback" not in capsys.readouterr().err
    monkeypatch.setenv("HISTO_DEBUG", "1")
    code, err = run(raising(NoTissueError("no tissue")), capsys)
    assert code == EXIT_INPUT and "Traceback" in err


def test_ctrl_c_is_one_line_and_130(capsys):
    code, err = run(raising(KeyboardInterrupt()), capsys)
    assert code == EXIT_INTERRUPTED
    assert err.strip().splitlines()[-1].startswith("error: interrupted")


def test_a_command_ending_with_an_exit_code_keeps_it(capsys):
    @click.command()
    @click.pass_context
    def command(ctx: click.Context) -> None:
        ctx.exit(5)

    code, _ = run(command, capsys)
    assert code == 5


def test_warnings_are_one_line_without_source_paths_and_restored(capsys):
    @click.command()
    def command() -> None:
        warnings.warn("first\n  spread over lines", UserWarning, stacklevel=1)
        worker = threading.Thread(target=lambda: warnings.warn("from a worker", UserWarning, stacklevel=1))
        worker.start()
        worker.join()

    before = warnings.showwarning
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        assert run_command(command, [], "histo") is None
    assert warnings.showwarning is before
    err = capsys.readouterr().err
    assert err.splitlines() == ["warning: first spread over lines", "warning: from a worker"]
    assert ".py" not in err


def test_tifffile_log_lines_become_warnings_and_the_logger_is_restored(capsys):
    logger = logging.getLogger("tifffile")
    handlers, propagate = list(logger.handlers), logger.propagate

    @click.command()
    def command() -> None:
        for offset in range(8):
            logger.warning("<tifffile.TiffPages @%d> invalid offset to first page %d", 8, offset)

    run_command(command, [], "histo")
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "warning: TIFF reader: invalid offset to first page 0"
    assert len(lines) == 6 and "not shown" in lines[-1]  # five, then one line saying there are more
    assert logger.handlers == handlers and logger.propagate == propagate


def test_help_documents_the_exit_codes_and_debug(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "Exit codes:" in out and "130" in out and "--debug" in out


def test_an_atomic_write_on_a_full_disk_names_the_file_and_leaves_no_part(tmp_path, monkeypatch):
    def full(self: Path, data: bytes) -> int:
        with open(self, "wb") as fh:
            fh.write(data[:10])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(OSError, match="No space left") as raised:
        write_bytes_atomic(tmp_path / "overlay.png", b"x" * 100)
    assert raised.value.errno == errno.ENOSPC and raised.value.filename == str(tmp_path / "overlay.png")
    assert list(tmp_path.iterdir()) == []
