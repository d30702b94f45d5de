"""How a ``histo`` command ends: one line per error or warning, and an exit code per kind of failure.

:func:`describe_failure` turns an expected failure (a project error, a
``qupath_bridge`` error, an OS error such as a full disk, a memory refusal)
into a :class:`Failure`: its exit code and one line with the fix.  Anything
else is a bug, shown with its traceback.  :func:`one_line_warnings` shows each
warning (and tifffile's log lines) as one ``warning: ...`` line while a command
runs.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import re
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from napari_histo.errors import (
    DeviceUnavailableError,
    DownloadError,
    HistoError,
    InvalidParameterError,
    MissingDependencyError,
)

__all__ = [
    "EXIT_BUG",
    "EXIT_CODES_HELP",
    "EXIT_ENVIRONMENT",
    "EXIT_FOUND_PROBLEMS",
    "EXIT_INPUT",
    "EXIT_INTERRUPTED",
    "EXIT_USAGE",
    "Failure",
    "describe_failure",
    "echo_error",
    "echo_warning",
    "naming_folder",
    "one_line_warnings",
]

EXIT_FOUND_PROBLEMS = 1  # ``histo qupath validate``: a file QuPath would reject
EXIT_USAGE = 2  # a bad option or argument
EXIT_INPUT = 3  # a bad input: slide, image, GeoJSON, model, recipe
EXIT_ENVIRONMENT = 4  # the machine: disk, permissions, memory, device, missing package
EXIT_BUG = 70  # an unexpected error: a bug (sysexits' EX_SOFTWARE)
EXIT_INTERRUPTED = 130  # Ctrl+C (128 + SIGINT)

EXIT_CODES_HELP = """\b
Exit codes:
  0    done
  1    histo qupath validate: a file has errors QuPath would reject
  2    a bad option or argument (the message names it and the accepted values)
  3    a bad input: a missing, damaged or unreadable slide, image, GeoJSON, model or recipe
  4    the machine: disk full, read-only or forbidden folder, not enough memory,
       no such device (e.g. --device cuda without a GPU), a missing package
  70   a bug in napari-histo: the traceback is shown, please report it
  130  interrupted (Ctrl+C); finished outputs are kept, run again to resume
Errors are one line 'error: ...' on stderr, warnings one line 'warning: ...';
'histo --debug COMMAND ...' (or HISTO_DEBUG=1) also shows their tracebacks.
"""

_ENVIRONMENT_ERRNOS = {
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EROFS,
    errno.EACCES,
    errno.EPERM,
    errno.EMFILE,
    errno.ENFILE,
    errno.EIO,
    errno.ENOMEM,
}
_INPUT_ERRNOS = {
    errno.ENOENT,
    errno.ENOTDIR,
    errno.EISDIR,
    errno.ELOOP,
    errno.ENAMETOOLONG,
    errno.EEXIST,
    errno.ENOTEMPTY,
    errno.ENXIO,
}


@dataclass(frozen=True)
class Failure:
    """An expected failure: the exit code and the one line (without ``error: ``) the user sees."""

    code: int
    message: str


def describe_failure(exc: BaseException) -> Failure | None:
    """The exit code and one line for an expected failure; ``None`` for a bug (keep its traceback)."""
    if isinstance(exc, HistoError):
        return Failure(_project_code(exc), _one_line(str(exc)))
    if _is_qupath_bridge_error(exc):
        code = EXIT_ENVIRONMENT if isinstance(exc, MemoryError) else EXIT_INPUT
        return Failure(code, _one_line(str(exc)))
    os_error = _environment_os_error(exc)
    if os_error is not None:
        return _describe_os_error(os_error)
    if isinstance(exc, MemoryError):
        detail = _one_line(str(exc))
        return Failure(
            EXIT_ENVIRONMENT,
            "not enough memory"
            + (f" ({detail})" if detail else "")
            + ": close other programs, or ask for less at once (a smaller --batch-size, fewer --workers, "
            "a coarser --mpp or --level), or run on a machine with more memory",
        )
    return None


def _project_code(exc: HistoError) -> int:
    if isinstance(exc, InvalidParameterError):
        return EXIT_USAGE
    if isinstance(exc, (MemoryError, PermissionError, DeviceUnavailableError, MissingDependencyError)):
        return EXIT_ENVIRONMENT
    if isinstance(exc, DownloadError):
        return EXIT_ENVIRONMENT
    if isinstance(exc, OSError) and exc.errno in _ENVIRONMENT_ERRNOS:
        return EXIT_ENVIRONMENT
    return EXIT_INPUT


def _is_qupath_bridge_error(exc: BaseException) -> bool:
    errors = sys.modules.get("qupath_bridge.errors")  # not imported: none of its errors can be raised
    return errors is not None and isinstance(exc, errors.QuPathBridgeError)


def _environment_os_error(exc: BaseException) -> OSError | None:
    """``exc`` if it is an OS error; else an OS error of the machine (disk full ...) it was raised from."""
    if isinstance(exc, OSError):
        return exc
    seen: set[int] = set()
    cause = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
            return cause
        cause = cause.__cause__ or (None if cause.__suppress_context__ else cause.__context__)
    return None


def _describe_os_error(exc: OSError) -> Failure:
    code = exc.errno
    path = _shown_path(exc.filename)
    other = _shown_path(exc.filename2)
    where = f"{path}" if path else "a file"
    folder = (path if Path(path).is_dir() else str(Path(path).parent)) if path else "the output folder"
    writing = f" (writing {Path(path).name})" if path and not Path(path).is_dir() else ""
    if code in (errno.ENOSPC, errno.EDQUOT):
        full = "no space left" if code == errno.ENOSPC else "disk quota exceeded"
        return Failure(
            EXIT_ENVIRONMENT,
            f"{full} on the disk of {folder}{writing}: free some space there or write to another folder "
            "(--out); files already finished are kept, so running the same command again goes on from there",
        )
    if code == errno.EROFS:
        return Failure(
            EXIT_ENVIRONMENT, f"{folder} is on a read-only file system: write to another folder (--out)"
        )
    if code in (errno.EACCES, errno.EPERM):
        return Failure(
            EXIT_ENVIRONMENT,
            f"permission denied: {where}: use a file or folder you may read and write, or change its "
            "permissions (ls -l shows them)",
        )
    if code in (errno.EMFILE, errno.ENFILE):
        return Failure(
            EXIT_ENVIRONMENT,
            "too many files open at once: use fewer --workers, or raise the limit (ulimit -n 4096)",
        )
    if code == errno.EIO:
        return Failure(
            EXIT_ENVIRONMENT,
            f"input/output error on {where}: the disk or network share failed; check it and run again",
        )
    if code == errno.ENOMEM:
        return Failure(EXIT_ENVIRONMENT, "not enough memory: close other programs or ask for less at once")
    if code == errno.ENOENT:
        return Failure(EXIT_INPUT, f"{where}: no such file or folder; check the path")
    if code == errno.ENOTDIR:
        return Failure(
            EXIT_INPUT,
            f"{where}: a part of this path is a file, not a folder; give a path whose folders are folders",
        )
    if code == errno.EISDIR:
        return Failure(EXIT_INPUT, f"{where} is a folder where a file is needed; give a file")
    if code == errno.ELOOP:
        return Failure(
            EXIT_INPUT,
            f"{where}: its symbolic links form a loop; give the real file (ls -l shows where links point)",
        )
    if code == errno.ENAMETOOLONG:
        return Failure(EXIT_INPUT, f"{where}: the name is too long for the file system; use a shorter one")
    if code in (errno.EEXIST, errno.ENOTEMPTY):
        target = f" (moving to {other})" if other else ""
        return Failure(EXIT_INPUT, f"{where} already exists{target}; remove it or choose another name")
    detail = _one_line(exc.strerror or str(exc)) or type(exc).__name__
    if code is None:  # a library's OSError about its input (e.g. a file it cannot identify)
        return Failure(EXIT_INPUT, f"{detail}" + (f": {where}" if path else ""))
    return Failure(EXIT_ENVIRONMENT, f"{detail}" + (f": {where}" if path else ""))


@contextlib.contextmanager
def naming_folder(folder: Path | str) -> Iterator[None]:
    """An OS error raised inside that names no file (a full disk under a library's write) names ``folder``."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None and exc.errno is not None:
            exc.filename = str(folder)
        raise


def _shown_path(filename: Any) -> str:
    """The file a user knows: without the ``.part`` / ``.NAME.XXXX.tmp`` of an atomic write."""
    if filename is None:
        return ""
    text = filename.decode(errors="replace") if isinstance(filename, bytes) else str(filename)
    path = Path(text)
    if path.name.endswith(".part"):
        return str(path.with_name(path.name.removesuffix(".part")))
    hidden = re.fullmatch(r"\.(.+)\.[^.]+\.tmp", path.name)
    return str(path.with_name(hidden[1])) if hidden else text


def _one_line(text: str) -> str:
    return " ".join(text.split())


def echo_error(message: str) -> None:
    """``error: MESSAGE`` (one line, red) on stderr."""
    _echo(click.style("error: " + _one_line(message), fg="red"))


def echo_warning(message: str) -> None:
    """``warning: MESSAGE`` (one line, yellow) on stderr, above any progress bar."""
    _echo(click.style("warning: " + _one_line(message), fg="yellow"))


def _echo(line: str) -> None:
    tqdm = sys.modules.get("tqdm")
    if tqdm is not None:  # clears and redraws a running bar instead of splitting it
        with contextlib.suppress(Exception):
            tqdm.tqdm.write(click.unstyle(line) if not _is_tty() else line, file=sys.stderr)
            return
    click.echo(line, err=True)


def _is_tty() -> bool:
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


class _OneLineLog(logging.Handler):
    """tifffile's log lines as ``warning: TIFF reader: ...`` (a few, then how many more)."""

    LIMIT = 5
    _PREFIX = re.compile(r"^<tifffile\.(\w+)(?: '([^']*)')?(?: @(\d+))?>\s*")

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.shown: list[str] = []
        self.hidden = 0

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self._PREFIX.sub("", _one_line(record.getMessage()))
            if text in self.shown:
                return
            if len(self.shown) >= self.LIMIT:
                self.hidden += 1
                if self.hidden == 1:
                    echo_warning("TIFF reader: more messages like these are not shown")
                return
            self.shown.append(text)
            echo_warning(f"TIFF reader: {text}")
        except Exception:  # noqa: BLE001 - logging must never end the command
            self.handleError(record)


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    echo_warning(str(message))


@contextlib.contextmanager
def one_line_warnings() -> Iterator[None]:
    """While the block runs: warnings and tifffile's log lines as one ``warning: ...`` line each.

    The previous ``warnings.showwarning`` and the tifffile logger are restored afterwards
    (commands run in-process in tests and notebooks).
    """
    previous = warnings.showwarning
    logger = logging.getLogger("tifffile")
    handler, propagate = _OneLineLog(), logger.propagate
    warnings.showwarning = _show_warning
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        warnings.showwarning = previous
        logger.removeHandler(handler)
        logger.propagate = propagate
