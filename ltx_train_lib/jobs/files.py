"""Which file of a job folder a URL names, for the web routes: safely, or not at all.

A job folder is a place anyone with disk access can drop a file or a link into, and its path arrives from the
browser. So the path is decoded exactly once, refused when it could leave the folder (traversal, absolute path,
encoded separators, a symlink or a hard link whose target may lie anywhere), and every message names the path as
the request spelled it, never a server path.
"""

from __future__ import annotations

import errno
import re
import stat
from pathlib import Path
from urllib.parse import unquote

from .errors import JobNotFoundError, JobReadError, UnsafeJobPathError
from .layout import job_dir

# Percent-escapes that still spell '.', '/', '\' or NUL after the one decoding mean the path was encoded twice (or
# will be decoded again by something in between): refuse rather than guess which decoding the client meant.
_ENCODED_SPECIAL_RE = re.compile(r"%(2e|2f|5c|00)", re.IGNORECASE)
_DRIVE_RE = re.compile(r"^[A-Za-z]:")


def resolve_job_file(root: str | Path, job_id: str, url_path: str) -> Path:
    """The path of a regular file inside the job's folder, for serving over HTTP.

    ``url_path`` is the file's path as written in the URL: '/'-separated and percent-encoded (a route must hand it
    over raw, before any decoding of its own). It is decoded here, exactly once, so ``x%2541.mp4`` names the file
    ``x%41.mp4``. Anything that still spells an escape for '.', '/', '\\' or NUL after that, any backslash or NUL,
    an absolute path, a '.' or '..' segment, a file (or symlink) that resolves outside the job folder, or a file with
    more than one hard link (its other names may lie anywhere) raises :class:`UnsafeJobPathError`; a missing file or
    a non-file raises :class:`JobNotFoundError`.
    """
    folder = job_dir(root, job_id)
    if not isinstance(url_path, str) or not url_path:
        raise JobNotFoundError("no file path given")
    refused = f"refused file path {url_path!r}"
    try:
        decoded = unquote(url_path, errors="strict") if "%" in url_path else url_path
    except UnicodeDecodeError as exc:
        raise UnsafeJobPathError(f"{refused}: bad percent-encoding") from exc
    if _ENCODED_SPECIAL_RE.search(decoded):
        raise UnsafeJobPathError(f"{refused}: encoded more than once")
    if "\\" in decoded or "\x00" in decoded:
        raise UnsafeJobPathError(f"{refused}: backslash or NUL")
    if decoded.startswith("/") or _DRIVE_RE.match(decoded):
        raise UnsafeJobPathError(f"{refused}: absolute path")
    parts = decoded.split("/")
    if any(part in ("..", ".") for part in parts):
        raise UnsafeJobPathError(f"{refused}: '.' or '..' segment")
    candidate = folder.joinpath(*[p for p in parts if p])
    try:
        real = candidate.resolve(strict=True)
        info = real.stat()
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise JobNotFoundError(f"job {job_id!r} has no file {decoded!r}") from exc
    except RuntimeError as exc:  # a symlink loop (Python < 3.13)
        raise UnsafeJobPathError(f"{refused}: a symlink loop") from exc
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # a symlink loop (Python >= 3.13)
            raise UnsafeJobPathError(f"{refused}: a symlink loop") from exc
        # str(exc) would name the server path: give the reason only.
        raise JobReadError(f"job {job_id!r}: {decoded!r} cannot be read ({exc.strerror or 'I/O error'})") from exc
    if not real.is_relative_to(folder.resolve()):
        raise UnsafeJobPathError(f"{refused}: it resolves outside the job folder")
    if not stat.S_ISREG(info.st_mode):
        raise JobNotFoundError(f"job {job_id!r}: {decoded!r} is not a regular file")
    if info.st_nlink > 1:
        # A hard link cannot be told from its other names: one of them may be a file outside the folder (or
        # anywhere on the disk) that someone linked in. Nothing the trainer writes is hard-linked.
        raise UnsafeJobPathError(f"{refused}: it is a hard link (the same file has another name elsewhere)")
    return real
