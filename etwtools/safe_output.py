"""Outputs that never harm an input and are never left half-written.

:class:`Outputs` is opened before the work starts, with the command's inputs and its output paths
(``-o``, ``--annotate``; None for stdout). It refuses, in one line naming the path:

- an output that is the same file as an input (also through a symbolic or hard link, also the file
  stdout is redirected to), or the same file as another output;
- an output whose folder is missing or not writable, or that names a folder; a closed stdout.

It creates each output's temporary file beside the target at once (so that a folder that cannot take
a file is found before the work). :meth:`Outputs.writing` gives the temporary path to write to and
renames it over the target when the write succeeded; on an error, an interrupt or a full disk the
temporary file is removed and the target is left as it was. Write errors (full disk, closed pipe)
become :class:`OutputError`.
"""

from __future__ import annotations

import errno
import io
import os
import stat
import sys
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import BinaryIO, Self

from .errors import EtwToolsError

PathLike = str | os.PathLike

#: What a failed write means, by errno, for the one-line error.
_WRITE_ERRORS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EFBIG: "the file is too large for the file system",
    errno.EPIPE: "the reader closed the pipe",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EIO: "input/output error",
}


class OutputError(EtwToolsError):
    """An output that cannot or must not be written."""


def _stat(path: PathLike) -> os.stat_result | None:
    try:
        return os.stat(path)
    except OSError:
        return None


def _same(a: os.stat_result, b: os.stat_result) -> bool:
    return os.path.samestat(a, b)


def stdout_stat() -> os.stat_result | bool:
    """The stat of the file stdout writes to; True for an in-memory stream (no file: a test's capture),
    False when stdout is closed."""
    if sys.stdout is None:
        return False
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, io.UnsupportedOperation):
        return True
    except ValueError:  # a closed file object
        return False
    try:
        return os.fstat(fd)
    except OSError:
        return False


class Outputs:
    """The outputs of one command, checked against its inputs; a context manager that removes every
    temporary file still there when it ends (error, interrupt, or an output never written)."""

    def __init__(
        self, inputs: Iterable[PathLike | None], outputs: Iterable[PathLike | None], *, stdout: bool = True
    ) -> None:
        self._temps: dict[str, str] = {}  # target (resolved) -> temporary path
        self._names: dict[str, str] = {}  # target (resolved) -> the path as given
        in_stats = [(os.fspath(p), s) for p in inputs if p is not None and (s := _stat(p)) is not None]
        self._in_stats = in_stats
        if stdout:
            st = stdout_stat()
            if st is False:
                raise OutputError("stdout is closed: give -o FILE or open stdout", path="stdout")
            if isinstance(st, os.stat_result) and stat.S_ISREG(st.st_mode):
                for name, s in in_stats:
                    if _same(st, s):
                        raise OutputError(
                            f"stdout is redirected into the input {name}: that would destroy it",
                            path="stdout",
                        )
        try:
            for out in outputs:
                if out is not None:
                    self._add(os.fspath(out), in_stats)
        except BaseException:
            self.discard()
            raise

    def _add(self, out: str, in_stats: list[tuple[str, os.stat_result]] | None = None) -> None:
        in_stats = self._in_stats if in_stats is None else in_stats
        if out.endswith(("/", os.sep)) or os.path.isdir(out):
            self._names[os.path.realpath(out)] = out  # a folder of files (events --all -f parquet):
            return  # its command checks and writes it
        target = os.path.realpath(out)  # through symbolic links: the file really written
        st = _stat(target)
        if st is not None:
            for name, s in in_stats:
                if _same(st, s):
                    what = "the input" if name == out else f"the input {name}"
                    raise OutputError(
                        f"is {what}: writing it would destroy it; choose another output file", path=out
                    )
        for other, given in self._names.items():
            if other == target or (st is not None and (o := _stat(other)) is not None and _same(st, o)):
                raise OutputError(f"is also the output {given}: give two different files", path=out)
        folder = os.path.dirname(target) or "."
        if not os.path.isdir(folder):
            raise OutputError(f"the folder {folder} does not exist", path=out)
        if st is not None and not stat.S_ISREG(st.st_mode):
            # a device or pipe (/dev/null, a FIFO): written in place, nothing to rename
            self._names[target] = out
            return
        base = os.path.basename(target)
        stem, ext = os.path.splitext(base)
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{stem}.", suffix=f".part{ext}", dir=folder)
        except OSError as e:
            raise OutputError(f"cannot write in {folder}: {_reason(e)}", path=out) from None
        os.close(fd)
        self._temps[target] = tmp
        self._names[target] = out

    # -- context manager
    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.discard()

    def discard(self) -> None:
        """Remove every temporary file not renamed over its target."""
        for tmp in self._temps.values():
            try:
                os.unlink(tmp)
            except OSError:
                pass
        self._temps.clear()

    def _target(self, out: PathLike) -> str:
        target = os.path.realpath(os.fspath(out))
        if target not in self._names:
            raise ValueError(f"{out} was not declared as an output")
        return target

    @contextmanager
    def open_binary(self, out: PathLike) -> Iterator[BinaryIO]:
        """``out`` opened for writing (bytes): a temporary file beside it, renamed over it when the block
        succeeds. A path not declared before (a file in an output folder) is checked against the inputs
        now. For :class:`etwtools.output.Output`'s ``opener``."""
        if os.path.realpath(os.fspath(out)) not in self._names:
            self._add(os.fspath(out))
        with self.writing(out) as path:
            try:
                f = open(path, "wb")  # noqa: SIM115
            except OSError as e:
                raise _write_error(e, os.fspath(out)) from None
            with f:
                yield f

    @contextmanager
    def writing(self, out: PathLike | None) -> Iterator[str | None]:
        """The path to write ``out`` to (None: stdout); renamed over ``out`` when the block succeeds,
        removed when it fails. Write errors become one-line :class:`OutputError` s naming ``out``."""
        if out is None:
            try:
                yield None
                if sys.stdout is not None:
                    sys.stdout.flush()
            except OSError as e:
                raise _write_error(e, "stdout") from None
            return
        target = self._target(out)
        tmp = self._temps.get(target)
        if tmp is None:  # a device or pipe: written in place
            try:
                yield os.fspath(out)
            except OSError as e:
                raise _write_error(e, os.fspath(out)) from None
            return
        try:
            yield tmp
            _keep_mode(tmp, target)
            os.replace(tmp, target)
        except OSError as e:
            raise _write_error(e, os.fspath(out)) from None
        except EtwToolsError as e:  # a writer's error names the file the user gave
            if e.path != tmp:
                raise
            raise type(e)(e.reason, path=out, offset=e.offset, line=e.line) from None
        finally:
            if os.path.exists(tmp) and self._temps.get(target) == tmp:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
            self._temps.pop(target, None)


def _keep_mode(tmp: str, target: str) -> None:
    """Give the new file the target's permissions (or the usual ones: mkstemp makes 0600 files)."""
    st = _stat(target)
    if st is not None:
        mode = stat.S_IMODE(st.st_mode)
    else:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    os.chmod(tmp, mode)


def _reason(e: OSError) -> str:
    return _WRITE_ERRORS.get(e.errno or 0) or (e.strerror or str(e)).lower()


def _write_error(e: OSError, name: str) -> OutputError:
    if e.errno == errno.EPIPE and name == "stdout":
        _silence_stdout()
    return OutputError(f"cannot write: {_reason(e)}", path=name)


def _silence_stdout() -> None:
    """After a closed pipe, point stdout at /dev/null so that Python's exit flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def output_error(e: OSError, name: str = "stdout") -> OutputError:
    """A write error on ``name`` as a one-line :class:`OutputError` (for writes outside
    :meth:`Outputs.writing`)."""
    return _write_error(e, name)


__all__ = ["OutputError", "Outputs", "output_error", "stdout_stat"]
