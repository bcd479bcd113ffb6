"""Caption files: which caption goes with which media file, in the reference trainer's four formats.

The format follows the extension:

- ``.json``  a list of ``{"caption": ..., "media_path": ...}`` objects (the pipeline's ``captions.json``)
- ``.jsonl`` one such object per line
- ``.csv``   header ``caption,media_path``
- ``.txt``   two files, ``<stem>_captions.txt`` and ``<stem>_paths.txt``, one entry per line

Media paths are stored relative to the caption file's folder with '/' separators (so a dataset folder can be moved
or shared between Windows and Linux) and read back as absolute paths. Other columns (e.g. IC-LoRA's
``reference_path``) are kept as they are in ``CaptionEntry.extra`` and written back by the .json/.jsonl/.csv
writers; the .txt format has no room for them. Reading never stops at a bad entry: empty
captions, missing media and repeated media are collected as problems, each message naming the file, the entry and
the fix. Only a file that cannot be parsed at all, or that holds no entry at all, raises ``DatasetError``.

``prepend_trigger`` puts a trigger word before a caption once: a caption that already starts with it is kept as is.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ltx_train_lib.errors import DatasetError
from ltx_train_lib.fileio import atomic_path, write_text_atomic

CAPTION_FORMATS = (".json", ".jsonl", ".csv", ".txt")
DEFAULT_CAPTION_COLUMN = "caption"
DEFAULT_MEDIA_COLUMN = "media_path"
# Column names other tools use, tried (in this order) when the default column is absent. An explicit
# --caption-column / --video-column is used as given, without fallbacks.
CAPTION_COLUMN_ALIASES = ("caption", "text", "prompt")
MEDIA_COLUMN_ALIASES = ("media_path", "video_path", "video", "image_path", "path", "file_name")
TXT_CAPTIONS_SUFFIX = "_captions"
TXT_PATHS_SUFFIX = "_paths"

ProblemKind = Literal["empty_caption", "missing_media", "duplicate_media", "bad_entry"]


@dataclass
class CaptionEntry:
    caption: str
    media_path: Path  # absolute once read; written relative to the caption file's folder
    # Columns other than the caption and the media path, as stored (values are not resolved as paths).
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class CaptionProblem:
    kind: ProblemKind
    index: int  # 1-based entry number (line number for .jsonl/.txt, row number after the header for .csv)
    media_path: Path | None
    message: str


@dataclass
class CaptionsReadResult:
    """Everything read from a caption file, bad entries included, plus what is wrong with them."""

    path: Path
    entries: list[CaptionEntry] = field(default_factory=list)
    problems: list[CaptionProblem] = field(default_factory=list)

    def usable(self) -> list[CaptionEntry]:
        """Entries with a caption and existing media, first occurrence of each media file only."""
        seen: set[Path] = set()
        out = []
        for entry in self.entries:
            if entry.caption.strip() and entry.media_path.is_file() and entry.media_path not in seen:
                out.append(entry)
            seen.add(entry.media_path)
        return out


def caption_format(path: str | Path) -> str:
    """The format (".json", ".jsonl", ".csv" or ".txt") of a caption file, from its extension."""
    suffix = Path(path).suffix.lower()
    if suffix not in CAPTION_FORMATS:
        raise DatasetError(
            f"{path}: unknown caption file type '{suffix or '(none)'}'. "
            f"Use a file name ending in one of {', '.join(CAPTION_FORMATS)}."
        )
    return suffix


def txt_file_pair(path: str | Path) -> tuple[Path, Path]:
    """The two files of the .txt format: ``<stem>_captions.txt`` and ``<stem>_paths.txt``.

    Either member of the pair may be given instead of the base name (``foo_captions.txt`` -> ``foo``).
    """
    path = Path(path)
    stem = path.stem
    for suffix in (TXT_CAPTIONS_SUFFIX, TXT_PATHS_SUFFIX):
        if stem.endswith(suffix) and stem != suffix:
            stem = stem[: -len(suffix)]
            break
    return (
        path.with_name(f"{stem}{TXT_CAPTIONS_SUFFIX}{path.suffix}"),
        path.with_name(f"{stem}{TXT_PATHS_SUFFIX}{path.suffix}"),
    )


def caption_file_exists(path: str | Path) -> bool:
    if caption_format(path) == ".txt":
        return all(p.is_file() for p in txt_file_pair(path))
    return Path(path).is_file()


# ----------------------------------------------------------------------------------------------------------- paths


def _absolute(path: str | Path) -> Path:
    # abspath + normpath, not resolve(): symlinked dataset folders keep the names the user sees.
    return Path(os.path.normpath(os.path.abspath(path)))


def relative_media_path(media_path: str | Path, base_dir: str | Path) -> str:
    """``media_path`` relative to ``base_dir`` with '/' separators; absolute when no relative path exists."""
    media_path = _absolute(media_path)
    try:
        rel = os.path.relpath(media_path, _absolute(base_dir))
    except ValueError:  # Windows: another drive
        return media_path.as_posix()
    return Path(rel).as_posix()


def resolve_media_path(stored: str, base_dir: str | Path) -> Path:
    """A stored media path made absolute against the caption file's folder.

    Backslashes are read as separators: caption files written on Windows store them (the reference trainer
    writes ``str(relative_path)``), and a backslash inside a POSIX file name is too rare to honour.
    """
    stored = stored.strip()
    if os.sep == "/" and "\\" in stored:
        stored = stored.replace("\\", "/")
    return _absolute(Path(base_dir) / stored)


# --------------------------------------------------------------------------------------------------------- reading


def _pick_column(available: Sequence[str], wanted: str, default: str, aliases: Sequence[str]) -> str | None:
    if wanted in available:
        return wanted
    if wanted == default:
        for alias in aliases:
            if alias in available:
                return alias
    return None


def _column_error(path: Path, what: str, wanted: str, available: Iterable[str], flag: str) -> DatasetError:
    names = ", ".join(repr(a) for a in available) or "none"
    return DatasetError(
        f"{path}: no {what} column '{wanted}' (columns found: {names}). "
        f"Rename the column to '{wanted}', or name the column to use with {flag}."
    )


Row = tuple[int, object, object, dict[str, Any]]  # (index, caption, media, other columns)


def _rows_from_objects(
    path: Path, objects: list[tuple[int, object]], caption_column: str, media_column: str
) -> tuple[list[Row], list[CaptionProblem]]:
    """(index, caption, media, extra) per object; objects lacking the columns become problems, not a crash."""
    keys: list[str] = []
    for _, obj in objects:
        if isinstance(obj, dict):
            keys.extend(k for k in obj if k not in keys)
    cap_col = _pick_column(keys, caption_column, DEFAULT_CAPTION_COLUMN, CAPTION_COLUMN_ALIASES)
    media_col = _pick_column(keys, media_column, DEFAULT_MEDIA_COLUMN, MEDIA_COLUMN_ALIASES)
    if objects and media_col is None:
        raise _column_error(path, "media", media_column, keys, "--video-column")
    if objects and cap_col is None:
        raise _column_error(path, "caption", caption_column, keys, "--caption-column")
    rows, problems = [], []
    for index, obj in objects:
        if not isinstance(obj, dict) or media_col not in obj:
            problems.append(
                CaptionProblem(
                    "bad_entry",
                    index,
                    None,
                    f"{path}: entry {index} is not an object with a '{media_col}' field (got {str(obj)[:80]!r}). "
                    f'Write it as {{"{cap_col}": "...", "{media_col}": "relative/path.mp4"}} or remove it.',
                )
            )
            continue
        extra = {k: v for k, v in obj.items() if k not in (cap_col, media_col)}
        rows.append((index, obj.get(cap_col, ""), obj[media_col], extra))
    return rows, problems


def _read_json(path: Path, caption_column: str, media_column: str):
    text = path.read_text(encoding="utf-8-sig")
    if not text.strip():
        return [], []  # an empty file holds no entries (reported as such, not as broken JSON)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DatasetError(
            f"{path}: not valid JSON ({exc}). Fix the file, or delete it to start the captions afresh."
        ) from exc
    if not isinstance(data, list):
        raise DatasetError(
            f'{path}: expected a JSON list of {{"caption", "media_path"}} objects, got a {type(data).__name__}. '
            'Write the entries as a list: [{"caption": "...", "media_path": "clip.mp4"}, ...].'
        )
    return _rows_from_objects(path, list(enumerate(data, 1)), caption_column, media_column)


def _read_jsonl(path: Path, caption_column: str, media_column: str):
    objects: list[tuple[int, object]] = []
    problems: list[CaptionProblem] = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
        if not line.strip():
            continue
        try:
            objects.append((line_no, json.loads(line)))
        except json.JSONDecodeError as exc:
            problems.append(
                CaptionProblem(
                    "bad_entry",
                    line_no,
                    None,
                    f"{path}: line {line_no} is not valid JSON ({exc}). Fix the line or remove it "
                    '(each line holds one {"caption", "media_path"} object).',
                )
            )
    rows, more = _rows_from_objects(path, objects, caption_column, media_column)
    return rows, problems + more


def _read_csv(path: Path, caption_column: str, media_column: str):
    # newline="" lets the csv module handle quoted newlines; utf-8-sig drops the BOM spreadsheet programs add.
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        header = list(reader.fieldnames or [])
        if not header:
            return [], []
        cap_col = _pick_column(header, caption_column, DEFAULT_CAPTION_COLUMN, CAPTION_COLUMN_ALIASES)
        media_col = _pick_column(header, media_column, DEFAULT_MEDIA_COLUMN, MEDIA_COLUMN_ALIASES)
        if media_col is None:
            raise _column_error(path, "media", media_column, header, "--video-column")
        if cap_col is None:
            raise _column_error(path, "caption", caption_column, header, "--caption-column")
        try:
            rows = [
                (
                    i,
                    row.get(cap_col) or "",
                    row.get(media_col) or "",
                    # None is DictReader's key for surplus cells of a row longer than the header: not a column.
                    {k: v or "" for k, v in row.items() if k is not None and k not in (cap_col, media_col)},
                )
                for i, row in enumerate(reader, 1)
            ]
        except csv.Error as exc:
            raise DatasetError(f"{path}: not a valid CSV file ({exc}). Fix the quoting or re-export it.") from exc
    return rows, []


def _read_lines(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8-sig")
    lines = text.split("\n")
    if lines and lines[-1] == "":  # the final newline ends the last entry; it is not an extra empty entry
        lines.pop()
    return [line.rstrip("\r") for line in lines]


def _read_txt(path: Path, caption_column: str, media_column: str):
    captions_file, paths_file = txt_file_pair(path)
    for f in (captions_file, paths_file):
        if not f.is_file():
            raise DatasetError(
                f"{path}: the .txt caption format needs two files, and {f} is missing. "
                f"Provide both {captions_file.name} and {paths_file.name}, one entry per line."
            )
    captions, paths = _read_lines(captions_file), _read_lines(paths_file)
    if len(captions) != len(paths):
        raise DatasetError(
            f"{path}: {captions_file.name} has {len(captions)} lines but {paths_file.name} has {len(paths)}. "
            "Make line N of both files describe the same media file."
        )
    return [(i, c, p, {}) for i, (c, p) in enumerate(zip(captions, paths, strict=True), 1)], []


_EMPTY_FILE_EXAMPLES = {
    ".json": 'the entries into it: [{"caption": "a cat on a fence", "media_path": "clip.mp4"}, ...]',
    ".jsonl": 'one {"caption": "a cat on a fence", "media_path": "clip.mp4"} object per line into it',
    ".csv": "the header caption,media_path and one row per media file into it",
    ".txt": "one caption per line into <name>_captions.txt and the media path on the same line of <name>_paths.txt",
}
_READERS = {".json": _read_json, ".jsonl": _read_jsonl, ".csv": _read_csv, ".txt": _read_txt}


def read_captions_checked(
    path: str | Path,
    *,
    caption_column: str = DEFAULT_CAPTION_COLUMN,
    media_column: str = DEFAULT_MEDIA_COLUMN,
    check_media: bool = True,
    allow_empty: bool = False,
) -> CaptionsReadResult:
    """Read a caption file; bad entries are kept out of the way as ``problems`` instead of raising.

    Raises ``DatasetError`` only when the file itself is unusable (missing, unparseable, no media column) or
    holds no entry at all (an empty list is a mistake for every reader but the captioner, which passes
    ``allow_empty=True`` to fill it). ``check_media=False`` skips the existence check (e.g. when media lives on
    another machine).
    """
    path = Path(path)
    fmt = caption_format(path)
    if not caption_file_exists(path):
        raise DatasetError(f"{path}: caption file not found. Check the path, or caption the media first.")
    base_dir = _absolute(path).parent
    rows, problems = _READERS[fmt](path, caption_column, media_column)
    if not rows and not problems and not allow_empty:
        raise DatasetError(
            f"{path}: the caption file has no entries, so there is nothing to train on. Caption the media first "
            f"(scripts/caption_videos.py FOLDER -o {path.name}, or the Qwen Caption node), or write "
            f"{_EMPTY_FILE_EXAMPLES[fmt]}."
        )
    result = CaptionsReadResult(path=path, problems=problems)
    first_seen: dict[Path, int] = {}
    for index, caption, stored, extra in rows:
        if not isinstance(stored, str) or not stored.strip():
            result.problems.append(
                CaptionProblem(
                    "bad_entry",
                    index,
                    None,
                    f"{path}: entry {index} has no media path. Write the media file's path (relative to "
                    f"{base_dir}) or remove the entry.",
                )
            )
            continue
        caption = "" if caption is None else str(caption)
        media = resolve_media_path(stored, base_dir)
        result.entries.append(CaptionEntry(caption=caption, media_path=media, extra=dict(extra)))
        where = f"{path}: entry {index} ({stored})"
        if not caption.strip():
            result.problems.append(
                CaptionProblem(
                    "empty_caption",
                    index,
                    media,
                    f"{where} has an empty caption. Write a caption, remove the entry, or re-run "
                    "caption_videos.py on the folder (it captions media whose caption is empty).",
                )
            )
        if check_media and not media.is_file():
            result.problems.append(
                CaptionProblem(
                    "missing_media",
                    index,
                    media,
                    f"{where}: media file {media} does not exist. Restore the file or remove the entry "
                    f"(paths are relative to {base_dir}).",
                )
            )
        if media in first_seen:
            result.problems.append(
                CaptionProblem(
                    "duplicate_media",
                    index,
                    media,
                    f"{where} repeats the media of entry {first_seen[media]}. Keep one entry per media file "
                    "(merge the captions or remove one).",
                )
            )
        else:
            first_seen[media] = index
    return result


def read_captions(
    path: str | Path,
    *,
    caption_column: str = DEFAULT_CAPTION_COLUMN,
    media_column: str = DEFAULT_MEDIA_COLUMN,
    allow_empty: bool = False,
) -> list[CaptionEntry]:
    """All entries of a caption file (absolute media paths). Use ``read_captions_checked`` to see problems."""
    return read_captions_checked(
        path, caption_column=caption_column, media_column=media_column, allow_empty=allow_empty
    ).entries


def prepend_trigger(caption: str, trigger: str | None) -> str:
    """``"<trigger> <caption>"``, unless the caption already starts with the trigger word (then it is kept).

    The trigger counts as present when the caption starts with it followed by a space, punctuation or nothing
    ("zxq a cat", "zxq, a cat", "zxq"), case-sensitively (the text encoder's tokens are); "zxqa cat" does not
    count. No trigger, or an empty caption, gives the stripped caption.
    """
    text = caption.strip()
    word = (trigger or "").strip()
    if not word or not text:
        return text
    if text.startswith(word):
        rest = text[len(word) :]
        if not rest or not (rest[0].isalnum() or rest[0] == "_"):
            return text
    return f"{word} {text}"


# --------------------------------------------------------------------------------------------------------- writing


def _flatten(caption: str) -> str:
    """One line per caption for the .txt format (which has no quoting)."""
    return " ".join(caption.replace("\r\n", "\n").replace("\r", "\n").split("\n")).strip()


def _extra_columns(entries: Sequence[CaptionEntry]) -> list[str]:
    """The extra column names of all entries in first-seen order (the standard two never repeat)."""
    names: list[str] = []
    for e in entries:
        names.extend(k for k in e.extra if k not in names and k not in (DEFAULT_CAPTION_COLUMN, DEFAULT_MEDIA_COLUMN))
    return names


def write_captions(path: str | Path, entries: Iterable[CaptionEntry]) -> Path:
    """Write entries atomically in the format the extension names; media paths relative to the file's folder.

    Extra columns follow ``caption`` and ``media_path`` (.json/.jsonl: only where an entry has them; .csv: every
    row, empty when absent); .txt drops them. For .txt, each of the two files is replaced atomically (paths first,
    so a reader that sees a new caption file also sees the paths written with it).
    """
    path = Path(path)
    fmt = caption_format(path)
    base_dir = _absolute(path).parent
    entries = list(entries)
    columns = _extra_columns(entries)
    rows = [(str(e.caption), relative_media_path(e.media_path, base_dir)) for e in entries]

    def obj(e: CaptionEntry, c: str, p: str) -> dict[str, Any]:
        return {DEFAULT_CAPTION_COLUMN: c, DEFAULT_MEDIA_COLUMN: p, **{k: e.extra[k] for k in columns if k in e.extra}}

    if fmt == ".json":
        data = [obj(e, c, p) for e, (c, p) in zip(entries, rows, strict=True)]
        write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    elif fmt == ".jsonl":
        lines = [json.dumps(obj(e, c, p), ensure_ascii=False) + "\n" for e, (c, p) in zip(entries, rows, strict=True)]
        write_text_atomic(path, "".join(lines))
    elif fmt == ".csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow([DEFAULT_CAPTION_COLUMN, DEFAULT_MEDIA_COLUMN, *columns])
        for e, (c, p) in zip(entries, rows, strict=True):
            writer.writerow([c, p, *("" if e.extra.get(k) is None else str(e.extra[k]) for k in columns)])
        with atomic_path(path) as tmp:
            tmp.write_text(buf.getvalue(), encoding="utf-8", newline="")
    else:
        captions_file, paths_file = txt_file_pair(path)
        write_text_atomic(paths_file, "".join(p + "\n" for _, p in rows))
        write_text_atomic(captions_file, "".join(_flatten(c) + "\n" for c, _ in rows))
    return path
