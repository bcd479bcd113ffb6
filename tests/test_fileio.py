"""The output checks every stage shares: a folder that cannot be written and a full disk are one clear OutputError."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

import pytest

from ltx_train_lib.errors import LtxTrainError, OutputError
from ltx_train_lib.fileio import (
    check_writable_dir,
    describe_os_error,
    human_size,
    translate_write_errors,
    write_text_atomic,
)


def test_check_writable_dir_creates_the_folder_and_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b"
    assert check_writable_dir(out, "output folder") == out
    assert out.is_dir() and list(out.iterdir()) == []


def test_a_file_in_the_way_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match=rf"^output folder {blocker}/deeper/out: cannot be created: {blocker} is a"):
        check_writable_dir(blocker / "deeper" / "out", "output folder")
    with pytest.raises(OutputError, match=rf"^output folder {blocker}: cannot be created: it is a file, not a folder"):
        check_writable_dir(blocker, "output folder")
    assert blocker.read_text() == "x"


def test_too_little_free_space(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=5_000_000))
    check_writable_dir(tmp_path, "output folder", needed_bytes=4_000_000)
    with pytest.raises(OutputError, match=r"about 6\.0 MB will be written but only 5\.0 MB is free\. Free some disk"):
        check_writable_dir(tmp_path, "output folder", needed_bytes=6_000_000, hint="Nothing was written.")


@pytest.mark.parametrize(
    ("code", "strerror", "phrase"),
    [
        (errno.ENOSPC, "No space left on device", r"the disk is full \(.* free\)\. Free some disk space"),
        (errno.EROFS, "Read-only file system", r"it is on a read-only file system\. Choose a folder on a writable"),
        (errno.EACCES, "Permission denied", r"permission denied\. Choose a folder you can write to"),
        (errno.EIO, "Input/output error", r"cannot be written \(Input/output error\)\. Check the folder"),
    ],
)
def test_write_errors_become_one_message(tmp_path: Path, code: int, strerror: str, phrase: str) -> None:
    target = tmp_path / "kept.txt"
    write_text_atomic(target, "before")
    with pytest.raises(OutputError, match=rf"^output folder {tmp_path}: {phrase}.* Earlier files are kept\.$") as info:
        with translate_write_errors(tmp_path, "output folder", "Earlier files are kept."):
            raise OSError(code, strerror, str(tmp_path / ".kept.txt.abc.tmp"))
    assert isinstance(info.value, LtxTrainError) and "Errno" not in str(info.value) and ".tmp" not in str(info.value)
    assert target.read_text() == "before"


def test_other_errors_pass_through(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not an OS error"):
        with translate_write_errors(tmp_path, "output folder"):
            raise ValueError("not an OS error")


def test_describe_and_sizes() -> None:
    assert describe_os_error(OSError(errno.ENOSPC, "No space left on device", "/x")) == "No space left on device"
    assert describe_os_error(RuntimeError("[Errno 1094995529] Invalid data")) == "Invalid data"
    assert [human_size(n) for n in (999, 1000, 1_500_000, 3_000_000_000)] == ["999 bytes", "1.0 KB", "1.5 MB", "3.0 GB"]
