"""Atomic file writing: a crash, a Cancel or a SIGKILL never leaves a half-written file a reader would trust.

Also the checks every stage makes before it writes much (``check_writable_dir``: the folder can be created and
written, and the disk has room), and ``translate_write_errors``, which turns an ``OSError`` raised while writing
(read-only folder, no permission, a file in the way, disk full) into one ``OutputError`` naming the folder, the
problem and the fix.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ltx_train_lib.errors import OutputError


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; on success it is renamed over ``target``.

    The temporary name starts with '.' and ends in '.tmp' so globbing readers never pick it up.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp_path, 0o644)  # safetensors writes 0600; ComfyUI may run as another user
        os.replace(tmp_path, target)
        _fsync_dir(target.parent)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text_atomic(target: str | Path, text: str) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(target)


def write_bytes_atomic(target: str | Path, data: bytes) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)


@contextlib.contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Yield a temporary directory; on success it replaces ``target`` by rename (a directory is complete or absent)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


# ------------------------------------------------------------------------------------------------- write errors

_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_DENIED = {errno.EACCES, errno.EPERM}
_ERRNO_PREFIX = re.compile(r"^\[Errno -?\d+\]\s*")


def human_size(num_bytes: int | float) -> str:
    """1536 -> '1.5 KB' (decimal units, as disk tools show free space)."""
    value = float(num_bytes)
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if abs(value) < 1000 or unit == "TB":
            return f"{int(value)} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def describe_os_error(exc: BaseException) -> str:
    """An OS or FFmpeg error in words: its text without the '[Errno N]' number or the file name."""
    text = getattr(exc, "strerror", None)
    if isinstance(text, str) and text.strip():
        return text.strip()
    return _ERRNO_PREFIX.sub("", str(exc)).strip() or type(exc).__name__


def free_bytes(path: str | Path) -> int | None:
    """Free space on the disk holding ``path`` (or its nearest existing parent); None when it cannot be read."""
    path = Path(os.path.abspath(path))
    for candidate in (path, *path.parents):
        if candidate.is_dir():
            try:
                return shutil.disk_usage(candidate).free
            except OSError:
                return None
    return None


def _file_in_the_way(path: Path) -> Path | None:
    """``path`` or the first of its parents that exists but is not a folder."""
    path = Path(os.path.abspath(path))
    for candidate in reversed((path, *path.parents)):
        if candidate.exists() and not candidate.is_dir():
            return candidate
    return None


def write_error_message(path: str | Path, what: str, exc: OSError, hint: str = "") -> str:
    """One message for an OSError met while writing into the folder ``path``: the folder, the problem, the fix."""
    path = Path(path)
    blocker = _file_in_the_way(path) if isinstance(exc, (NotADirectoryError, FileExistsError)) else None
    if blocker is not None:
        where = "it is a file" if blocker == Path(os.path.abspath(path)) else f"{blocker} is a file"
        problem, fix = f"cannot be created: {where}, not a folder", "Choose another folder, or move that file away."
    elif exc.errno in _DISK_FULL:
        free = free_bytes(path)
        problem = "the disk is full" + (f" ({human_size(free)} free)" if free is not None else "")
        fix = "Free some disk space, or choose a folder on another disk."
    elif exc.errno == errno.EROFS:
        problem, fix = "it is on a read-only file system", "Choose a folder on a writable disk."
    elif exc.errno in _DENIED:
        problem = "permission denied"
        fix = "Choose a folder you can write to, or give this user write permission on it."
    else:
        problem, fix = f"cannot be written ({describe_os_error(exc)})", "Check the folder and its disk."
    return f"{what} {path}: {problem}. {fix}" + (f" {hint}" if hint else "")


@contextlib.contextmanager
def translate_write_errors(path: str | Path, what: str, hint: str = "") -> Iterator[None]:
    """Turn an OSError raised inside the block into an ``OutputError`` about the folder ``path``.

    ``what`` names the folder for the user ("output folder", "caption file folder"); ``hint`` is appended, e.g.
    what happens to the files already written. Wrap only code that writes: an error reading an input file
    would otherwise be blamed on the output folder.
    """
    try:
        yield
    except OutputError:
        raise
    except OSError as exc:
        raise OutputError(write_error_message(path, what, exc, hint)) from exc


def check_writable_dir(path: str | Path, what: str, needed_bytes: int = 0, hint: str = "") -> Path:
    """Create the folder ``path`` if needed and make sure files can be written there before any real work.

    A small probe file is created and removed (a permission check alone would pass for root on a read-only
    mount). ``needed_bytes``: a rough estimate of what will be written; fewer bytes free raises ``OutputError``.
    """
    path = Path(path)
    with translate_write_errors(path, what, hint):
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write_check.", suffix=".tmp", dir=path)
        os.close(fd)
        os.unlink(probe)
    if needed_bytes > 0:
        free = free_bytes(path)
        if free is not None and free < needed_bytes:
            raise OutputError(
                f"{what} {path}: not enough free disk space: about {human_size(needed_bytes)} will be written but "
                f"only {human_size(free)} is free. Free some disk space, or choose a folder on another disk."
                + (f" {hint}" if hint else "")
            )
    return path
