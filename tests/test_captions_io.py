"""Caption files: the four formats round-trip, paths stay relative, and bad entries are reported, not fatal."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from ltx_train_lib.captions_io import (
    CaptionEntry,
    prepend_trigger,
    read_captions,
    read_captions_checked,
    txt_file_pair,
    write_captions,
)
from ltx_train_lib.errors import DatasetError

FORMATS = [".json", ".jsonl", ".csv", ".txt"]


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


@pytest.fixture
def dataset(tmp_path: Path) -> tuple[Path, list[CaptionEntry]]:
    root = tmp_path / "clips"
    entries = [
        CaptionEntry('A "quoted" caption, with commas; and more', _touch(root / "a.mp4")),
        CaptionEntry("Ünïcödé — 日本語のキャプション 🎬", _touch(root / "sub dir" / "b ü.mov")),
        CaptionEntry("Tabs\tand, 'single' quotes", _touch(root / "img.png")),
        CaptionEntry("Lives outside the caption folder", _touch(tmp_path / "elsewhere" / "c.mp4")),
    ]
    return root, entries


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_keeps_captions_and_absolute_paths(dataset, fmt):
    root, entries = dataset
    target = root / f"captions{fmt}"
    write_captions(target, entries)
    back = read_captions(target)
    assert [e.caption for e in back] == [e.caption for e in entries]
    assert [e.media_path for e in back] == [e.media_path for e in entries]
    assert all(e.media_path.is_absolute() for e in back)
    result = read_captions_checked(target)
    assert result.problems == []
    assert result.usable() == back


@pytest.mark.parametrize("fmt", FORMATS)
def test_paths_are_stored_relative_with_forward_slashes(dataset, fmt):
    root, entries = dataset
    target = root / f"captions{fmt}"
    write_captions(target, entries)
    if fmt == ".txt":
        stored = txt_file_pair(target)[1].read_text(encoding="utf-8").splitlines()
    elif fmt == ".json":
        stored = [row["media_path"] for row in json.loads(target.read_text(encoding="utf-8"))]
    elif fmt == ".jsonl":
        stored = [json.loads(line)["media_path"] for line in target.read_text(encoding="utf-8").splitlines()]
    else:
        with open(target, encoding="utf-8", newline="") as fh:
            rows = list(csv.reader(fh))
        assert rows[0] == ["caption", "media_path"]
        stored = [row[1] for row in rows[1:]]
    assert stored == ["a.mp4", "sub dir/b ü.mov", "img.png", "../elsewhere/c.mp4"]


def test_moved_dataset_folder_still_resolves(dataset, tmp_path):
    root, entries = dataset
    write_captions(root / "captions.json", entries[:3])
    moved = root.rename(tmp_path / "moved")
    back = read_captions(moved / "captions.json")
    assert [e.media_path for e in back] == [moved / "a.mp4", moved / "sub dir" / "b ü.mov", moved / "img.png"]
    assert all(e.media_path.is_file() for e in back)


@pytest.mark.parametrize("fmt", [".json", ".jsonl", ".csv"])
def test_multiline_captions_survive_structured_formats(tmp_path, fmt):
    entry = CaptionEntry('Line one, "quoted"\nline two\r\nline three', _touch(tmp_path / "a.mp4"))
    write_captions(tmp_path / f"c{fmt}", [entry])
    assert read_captions(tmp_path / f"c{fmt}")[0].caption == entry.caption


def test_txt_flattens_newlines_and_uses_two_files(tmp_path):
    entries = [
        CaptionEntry("first line\nsecond line\r\nthird", _touch(tmp_path / "a.mp4")),
        CaptionEntry("plain", _touch(tmp_path / "b.mp4")),
    ]
    write_captions(tmp_path / "dataset.txt", entries)
    assert (tmp_path / "dataset_captions.txt").read_text(encoding="utf-8") == "first line second line third\nplain\n"
    assert (tmp_path / "dataset_paths.txt").read_text(encoding="utf-8") == "a.mp4\nb.mp4\n"
    assert not (tmp_path / "dataset.txt").exists()
    # Either file of the pair names the dataset as well as the base name does.
    for name in ("dataset.txt", "dataset_captions.txt", "dataset_paths.txt"):
        assert [e.caption for e in read_captions(tmp_path / name)] == ["first line second line third", "plain"]


def test_txt_line_count_mismatch_is_an_error(tmp_path):
    (tmp_path / "d_captions.txt").write_text("one\ntwo\n", encoding="utf-8")
    (tmp_path / "d_paths.txt").write_text("a.mp4\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"d_captions\.txt has 2 lines but d_paths\.txt has 1"):
        read_captions(tmp_path / "d.txt")


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path):
    media = _touch(tmp_path / "a.mp4")
    target = tmp_path / "captions.json"
    write_captions(target, [CaptionEntry("old", media)])

    def failing_entries():
        yield CaptionEntry("new", media)
        raise RuntimeError("crash while producing entries")

    with pytest.raises(RuntimeError):
        write_captions(target, failing_entries())
    assert read_captions(target)[0].caption == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4", "captions.json"]


def test_reader_reports_empty_missing_and_duplicate_entries(tmp_path):
    _touch(tmp_path / "a.mp4")
    _touch(tmp_path / "b.mp4")
    rows = [
        {"caption": "fine", "media_path": "a.mp4"},
        {"caption": "  ", "media_path": "b.mp4"},
        {"caption": "gone", "media_path": "missing.mp4"},
        {"caption": "again", "media_path": "./a.mp4"},
    ]
    target = tmp_path / "captions.json"
    target.write_text(json.dumps(rows), encoding="utf-8")
    result = read_captions_checked(target)
    assert len(result.entries) == 4  # nothing is dropped silently
    kinds = {(p.kind, p.index) for p in result.problems}
    assert kinds == {("empty_caption", 2), ("missing_media", 3), ("duplicate_media", 4)}
    for problem in result.problems:
        assert str(target) in problem.message and f"entry {problem.index}" in problem.message
    by_kind = {p.kind: p.message for p in result.problems}
    assert "b.mp4" in by_kind["empty_caption"] and "Write a caption" in by_kind["empty_caption"]
    assert (
        "missing.mp4" in by_kind["missing_media"] and "Restore the file or remove the entry" in by_kind["missing_media"]
    )
    assert "repeats the media of entry 1" in by_kind["duplicate_media"]
    assert [e.caption for e in result.usable()] == ["fine"]


def test_check_media_false_skips_the_existence_check(tmp_path):
    (tmp_path / "c.jsonl").write_text('{"caption": "x", "media_path": "far/away.mp4"}\n', encoding="utf-8")
    assert read_captions_checked(tmp_path / "c.jsonl", check_media=False).problems == []
    assert [p.kind for p in read_captions_checked(tmp_path / "c.jsonl").problems] == ["missing_media"]


def test_bad_jsonl_line_is_reported_and_the_rest_read(tmp_path):
    _touch(tmp_path / "a.mp4")
    lines = ['{"caption": "ok", "media_path": "a.mp4"}', "{not json", "", '["not", "an", "object"]']
    (tmp_path / "c.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = read_captions_checked(tmp_path / "c.jsonl")
    assert [e.caption for e in result.entries] == ["ok"]
    assert [(p.kind, p.index) for p in result.problems] == [("bad_entry", 2), ("bad_entry", 4)]
    assert "line 2 is not valid JSON" in result.problems[0].message


def test_invalid_json_file_names_file_and_fix(tmp_path):
    (tmp_path / "captions.json").write_text('[{"caption": "x", ', encoding="utf-8")
    with pytest.raises(DatasetError, match=r"captions\.json: not valid JSON .*delete it"):
        read_captions(tmp_path / "captions.json")
    (tmp_path / "obj.json").write_text('{"caption": "x"}', encoding="utf-8")
    with pytest.raises(DatasetError, match="expected a JSON list"):
        read_captions(tmp_path / "obj.json")


def test_alternative_and_overridden_column_names(tmp_path):
    _touch(tmp_path / "a.mp4")
    (tmp_path / "alias.csv").write_text('\ufefftext,video_path\n"a, b",a.mp4\n', encoding="utf-8")
    entry = read_captions(tmp_path / "alias.csv")[0]
    assert (entry.caption, entry.media_path) == ("a, b", tmp_path / "a.mp4")

    (tmp_path / "custom.json").write_text(json.dumps([{"prompt_en": "p", "clip": "a.mp4"}]), encoding="utf-8")
    entry = read_captions(tmp_path / "custom.json", caption_column="prompt_en", media_column="clip")[0]
    assert (entry.caption, entry.media_path) == ("p", tmp_path / "a.mp4")
    with pytest.raises(DatasetError, match=r"no media column 'media_path'.*'clip'.*--video-column"):
        read_captions(tmp_path / "custom.json")
    with pytest.raises(DatasetError, match=r"no caption column 'prompt'.*--caption-column"):
        read_captions(tmp_path / "custom.json", caption_column="prompt", media_column="clip")


def test_windows_separators_are_read(tmp_path):
    _touch(tmp_path / "sub" / "a.mp4")
    (tmp_path / "c.json").write_text(json.dumps([{"caption": "x", "media_path": "sub\\a.mp4"}]), encoding="utf-8")
    assert read_captions(tmp_path / "c.json")[0].media_path == tmp_path / "sub" / "a.mp4"


def test_unknown_extension_and_missing_file(tmp_path):
    with pytest.raises(DatasetError, match=r"unknown caption file type '\.yaml'.*\.json, \.jsonl, \.csv, \.txt"):
        write_captions(tmp_path / "captions.yaml", [])
    with pytest.raises(DatasetError, match="caption file not found"):
        read_captions(tmp_path / "nope.json")


# ------------------------------------------------------------------------------------------------- empty files


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_caption_file_with_no_entries_is_an_error(tmp_path, fmt):
    target = tmp_path / f"captions{fmt}"
    write_captions(target, [])
    with pytest.raises(DatasetError, match=r"has no entries, so there is nothing to train on\. Caption the media first"):
        read_captions_checked(target)
    with pytest.raises(DatasetError, match=str(target).replace(".", r"\.")):
        read_captions(target)
    # The captioner fills an empty file, so it may read one.
    assert read_captions_checked(target, allow_empty=True).entries == []


def test_an_empty_json_file_is_an_empty_list(tmp_path):
    (tmp_path / "captions.json").write_text("  \n", encoding="utf-8")
    with pytest.raises(DatasetError, match="has no entries"):
        read_captions(tmp_path / "captions.json")
    assert read_captions(tmp_path / "captions.json", allow_empty=True) == []


def test_preprocess_rejects_an_empty_caption_file(tmp_path, capsys):
    from ltx_train_lib.cli.preprocess import main as preprocess_main

    (tmp_path / "captions.json").write_text("[]\n", encoding="utf-8")
    rc = preprocess_main([str(tmp_path), "--resolution-buckets", "64x64x9", "--model-source", "tiny", "--device", "cpu"])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and f"error: {tmp_path / 'captions.json'}: the caption file has no entries" in err
    assert "caption_videos.py" in err and "Traceback" not in err
    assert (tmp_path / "captions.json").read_text(encoding="utf-8") == "[]\n"
    assert not (tmp_path / ".precomputed").exists() or not any((tmp_path / ".precomputed").iterdir())


# ------------------------------------------------------------------------------------------------ trigger word


@pytest.mark.parametrize(
    ("caption", "trigger", "prompt"),
    [
        ("a cat on a fence", "zxq", "zxq a cat on a fence"),
        ("zxq a cat on a fence", "zxq", "zxq a cat on a fence"),  # already there: not twice
        ("  zxq, a cat ", "zxq", "zxq, a cat"),
        ("zxq", "zxq", "zxq"),
        ("zxqa cat", "zxq", "zxq zxqa cat"),  # another word that starts with the same letters
        ("Zxq a cat", "zxq", "zxq Zxq a cat"),  # case-sensitive, as the text encoder's tokens
        ("a cat", " zxq ", "zxq a cat"),
        ("a cat", None, "a cat"),
        ("a cat", "  ", "a cat"),
        ("  ", "zxq", ""),
    ],
)
def test_prepend_trigger_adds_the_trigger_once(caption, trigger, prompt):
    assert prepend_trigger(caption, trigger) == prompt
