"""Scene detection and frame-accurate splitting on videos the tests generate."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from ltx_train_lib import media, scenes, synthetic
from ltx_train_lib.cli.split_scenes import main as split_main
from ltx_train_lib.errors import ConfigError
from ltx_train_lib.scenes import SceneLength, SplitSettings, parse_scene_length, split_folder
from tests.test_media import make_bad_inputs

CUTS = (72, 168)
EXPECTED = [(0, 72), (72, 168), (168, 240)]


@pytest.fixture(scope="module")
def scene_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic.make_scene_video(tmp_path_factory.mktemp("src") / "scene.mp4", cuts=CUTS, num_frames=240)


@pytest.fixture(scope="module")
def small_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """48 frames, cut at 24: quick to split, for the folder and re-run tests."""
    path = tmp_path_factory.mktemp("small") / "small.mp4"
    return synthetic.make_scene_video(path, cuts=(24,), num_frames=48, size=(96, 64), seed=1)


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def _frames_of(path: Path) -> int:
    return len(media.read_video_frames(path)[0])


# ----------------------------------------------------------------------------- lengths


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("123", SceneLength(frames=123)),
        (48, SceneLength(frames=48)),
        ("5s", SceneLength(seconds=5.0)),
        ("2.5s", SceneLength(seconds=2.5)),
        (" 0.5S ", SceneLength(seconds=0.5)),
        ("00:00:03", SceneLength(seconds=3.0)),
        ("01:02:03.250", SceneLength(seconds=3723.25)),
        ("0:00:02.5", SceneLength(seconds=2.5)),
    ],
)
def test_parse_scene_length(text: str | int, expected: SceneLength) -> None:
    assert parse_scene_length(text) == expected


@pytest.mark.parametrize("text", ["", "abc", "5m", "-3", "1.5", "00:61:00", "s", "3 frames"])
def test_parse_scene_length_rejects(text: str) -> None:
    with pytest.raises(ConfigError, match=r"--filter-shorter-than: cannot read .* frames \('48'\)"):
        parse_scene_length(text)


def test_scene_length_compare() -> None:
    assert SceneLength(frames=72).shorter(71, 10.0) and not SceneLength(frames=72).shorter(72, 0.1)
    assert SceneLength(seconds=3.0).shorter(10, 2.99) and not SceneLength(seconds=3.0).shorter(1, 3.0)


# ----------------------------------------------------------------------------- detection


@pytest.mark.parametrize("detector", ["content", "adaptive", "histogram"])
def test_detectors_find_exact_cuts(scene_video: Path, detector: str) -> None:
    times = scenes.detect_scene_times(scene_video, SplitSettings(detector=detector))  # type: ignore[arg-type]
    planned, detected = scenes.plan_scenes(times, scenes._frame_times(scene_video))
    assert detected == 3
    assert [(s.start_frame, s.end_frame) for s in planned] == EXPECTED
    assert [s.number for s in planned] == [1, 2, 3]


def test_detection_options_reach_the_detector(scene_video: Path) -> None:
    # A threshold above any frame difference finds no cut: the whole video is one scene.
    assert scenes.detect_scene_times(scene_video, SplitSettings(threshold=255)) == [(0.0, 10.0)]
    # A minimum scene length longer than the first scene drops the cut at 72 (PySceneDetect merges it).
    times = scenes.detect_scene_times(scene_video, SplitSettings(min_scene_length="4s"))
    assert len(times) == 2 and times[0][1] == pytest.approx(7.0)
    # Fixed downscale and frame skip still find both cuts (frame skip may move them by a frame).
    times = scenes.detect_scene_times(scene_video, SplitSettings(downscale=4, frame_skip=1))
    assert len(times) == 3 and times[1][0] == pytest.approx(3.0, abs=1 / 24 + 1e-6)
    # The cut at 72 (red picture to blue stripes) changes colour more than brightness: luma-only misses it.
    assert scenes.detect_scene_times(scene_video, SplitSettings(luma_only=True)) == [(0.0, 7.0), (7.0, 10.0)]


def test_threshold_detector_cuts_in_fades(tmp_path: Path) -> None:
    seg = list(synthetic.scene_frames(cuts=(48,), num_frames=96, size=(96, 64)))
    a, b = seg[:48], seg[48:]
    fade_out = [(a[-1] * (1 - i / 12)).astype(np.uint8) for i in range(1, 13)]
    fade_in = [(b[0] * (i / 12)).astype(np.uint8) for i in range(1, 13)]
    video = media.write_video(tmp_path / "fade.mp4", np.stack(a + fade_out + fade_in + b), 24)
    cuts = {}
    for bias in (-1.0, 0.0, 1.0):
        times = scenes.detect_scene_times(video, SplitSettings(detector="threshold", fade_bias=bias))
        assert len(times) == 2, (bias, times)
        cuts[bias] = times[1][0] * 24
    assert 48 <= cuts[-1.0] < cuts[0.0] < cuts[1.0] <= 72  # the cut moves from fade-out start to fade-in end


def test_plan_scenes_filter_and_max() -> None:
    frame_times = [i / 24 for i in range(240)]
    times = [(0.0, 3.0), (3.0, 7.0), (7.0, 10.0)]
    planned, detected = scenes.plan_scenes(times, frame_times, filter_shorter_than=SceneLength(frames=80))
    assert detected == 3 and [(s.number, s.start_frame, s.end_frame) for s in planned] == [(1, 72, 168)]
    planned, _ = scenes.plan_scenes(times, frame_times, filter_shorter_than=SceneLength(seconds=3.0))
    assert len(planned) == 3  # exactly 3 s is not shorter than 3 s
    planned, _ = scenes.plan_scenes(times, frame_times, max_scenes=2)
    assert [(s.start_frame, s.end_frame) for s in planned] == EXPECTED[:2]
    # Detector timestamps rounded to the millisecond still land on the right frames.
    planned, _ = scenes.plan_scenes([(0.0, 3.0004), (2.9996, 10.0)], frame_times)
    assert [(s.start_frame, s.end_frame) for s in planned] == [(0, 72), (72, 240)]


# ----------------------------------------------------------------------------- splitting


def test_split_is_frame_accurate(scene_video: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    summary = split_folder(scene_video, out)
    assert [r.status for r in summary.results] == ["split"]
    names = [f"scene-Scene-{n:03d}.mp4" for n in (1, 2, 3)]
    assert _files(out) == [".scenes_manifest.json", *names]
    source, _ = media.read_video_frames(scene_video)
    for name, (start, end) in zip(names, EXPECTED, strict=True):
        info = media.probe_media(out / name)
        assert (info.fps, info.width, info.height) == (24.0, 320, 240)
        clip, _ = media.read_video_frames(out / name)
        assert len(clip) == end - start, name
        # First and last frames are the source's frames at the cut, not their neighbours.
        diff = lambda a, b: float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())  # noqa: E731
        assert diff(clip[0], source[start]) < 4
        assert diff(clip[-1], source[end - 1]) < 4
        if start > 0:
            assert diff(clip[0], source[start - 1]) > 20
    assert [c.frames for c in summary.results[0].clips] == [72, 96, 72]


def test_split_options_filter_and_max(scene_video: Path, tmp_path: Path) -> None:
    summary = split_folder(scene_video, tmp_path / "f", SplitSettings(filter_shorter_than="00:00:03.5"))
    assert [(c.file, c.frames) for c in summary.results[0].clips] == [("scene-Scene-001.mp4", 96)]
    assert summary.results[0].scenes_detected == 3
    assert _frames_of(tmp_path / "f" / "scene-Scene-001.mp4") == 96
    summary = split_folder(scene_video, tmp_path / "m", SplitSettings(max_scenes=1, crf=30))
    assert [(c.file, c.frames) for c in summary.results[0].clips] == [("scene-Scene-001.mp4", 72)]


def test_rotated_and_vfr_sources(tmp_path: Path) -> None:
    rotated = synthetic.make_scene_video(
        tmp_path / "in" / "rot.mp4", cuts=(20,), num_frames=40, size=(96, 64), rotation=270
    )
    summary = split_folder(rotated, tmp_path / "out")
    assert [c.frames for c in summary.results[0].clips] == [20, 20]
    info = media.probe_media(tmp_path / "out" / "rot-Scene-002.mp4")
    assert (info.width, info.height, info.rotation) == (64, 96, 0)  # written upright
    upright, _ = media.read_video_frames(rotated)
    clip, _ = media.read_video_frames(tmp_path / "out" / "rot-Scene-002.mp4")
    diff = lambda a, b: float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())  # noqa: E731
    assert diff(clip[0], upright[20]) < 8 < 20 < diff(clip[0], upright[19])
    # A VFR source (frames missing here and there) is cut by timestamps and keeps every frame once.
    vfr = synthetic.make_vfr_video(tmp_path / "in" / "vfr.mp4")
    summary = split_folder(vfr, tmp_path / "vfr_out")
    assert sum(c.frames for c in summary.results[0].clips) == len(synthetic.vfr_ticks())


def test_folder_rerun_and_redo(small_video: Path, tmp_path: Path) -> None:
    src = tmp_path / "videos"
    (src / "sub").mkdir(parents=True)
    shutil.copy(small_video, src / "b.mp4")
    shutil.copy(small_video, src / "sub" / "a.mp4")
    synthetic.make_image(src / "still.png")  # images are not videos: ignored
    out = tmp_path / "videos" / "scenes"  # output inside the input folder: its clips are never inputs

    flat = split_folder(src, out)
    assert [r.source.name for r in flat.results] == ["b.mp4"]
    deep = split_folder(src, out, recursive=True)
    assert [(r.source.name, r.status) for r in deep.results] == [("b.mp4", "unchanged"), ("a.mp4", "split")]
    assert _files(out) == [
        ".scenes_manifest.json",
        "b-Scene-001.mp4",
        "b-Scene-002.mp4",
        "sub/a-Scene-001.mp4",
        "sub/a-Scene-002.mp4",
    ]
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.mp4")}

    again = split_folder(src, out, recursive=True)
    assert [r.status for r in again.results] == ["unchanged", "unchanged"]
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.mp4")} == stamps

    (out / "sub" / "a-Scene-002.mp4").unlink()  # incomplete output: that video is redone, the other kept
    redo = split_folder(src, out, recursive=True)
    assert [r.status for r in redo.results] == ["unchanged", "split"]
    assert (out / "sub" / "a-Scene-002.mp4").is_file()
    assert (out / "b-Scene-001.mp4").stat().st_mtime_ns == stamps[out / "b-Scene-001.mp4"]

    # New settings redo every video, and clips the old settings made but the new ones do not are removed.
    fewer = split_folder(src, out, SplitSettings(max_scenes=1), recursive=True)
    assert [r.status for r in fewer.results] == ["split", "split"]
    assert _files(out) == [".scenes_manifest.json", "b-Scene-001.mp4", "sub/a-Scene-001.mp4"]


def test_bad_inputs_are_skipped_and_named(small_video: Path, tmp_path: Path) -> None:
    src = tmp_path / "in"
    bad = make_bad_inputs(src, small_video)
    shutil.copy(small_video, src / "good.mov")
    shutil.copy(small_video, src / "good.mp4")  # same stem as good.mov (sorted first): clip names would collide
    out = tmp_path / "out"
    summary = split_folder(src, out)
    assert [r.source.name for r in summary.split] == ["good.mov"]
    reasons = {r.source.name: r.reason for r in summary.skipped}
    assert set(reasons) == {p.name for p, _ in bad.values()} | {"good.mp4"}
    for path, phrase in bad.values():
        assert str(path) in reasons[path.name] and phrase in reasons[path.name]
    assert "good.mov" in reasons["good.mp4"] and "Rename one" in reasons["good.mp4"]
    # Nothing half-written: only the good video's clips and the manifest, no temp files or folders.
    assert _files(out) == [".scenes_manifest.json", "good-Scene-001.mp4", "good-Scene-002.mp4"]
    assert [p.name for p in out.iterdir() if p.is_dir()] == []
    assert "skipped" in summary.text() and "garbage.mp4" in summary.text()


def test_crash_mid_video_leaves_nothing(small_video: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}
    real = media.VideoWriter.write_frame

    def failing(self: media.VideoWriter, frame) -> None:  # noqa: ANN001
        calls["n"] += 1
        if calls["n"] == 30:  # inside the second scene: the first clip is already complete
            raise KeyboardInterrupt
        real(self, frame)

    monkeypatch.setattr(media.VideoWriter, "write_frame", failing)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        split_folder(small_video, out)
    assert _files(out) == [] and list(out.iterdir()) == []
    monkeypatch.setattr(media.VideoWriter, "write_frame", real)
    assert [r.status for r in split_folder(small_video, out).results] == ["split"]


def test_cli(small_video: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    argv = [str(small_video), str(out), "--detector", "adaptive", "--min-scene-length", "10", "--quiet"]
    assert split_main(argv) == 0
    assert _files(out) == [".scenes_manifest.json", "small-Scene-001.mp4", "small-Scene-002.mp4"]
    assert split_main([*argv, "--filter-shorter-than", "1.5s"]) == 0  # 24-frame scenes are 1 s: none kept
    assert _files(out) == [".scenes_manifest.json"]
    assert "1 split, 0 already done, 0 skipped, 0 clips." in capsys.readouterr().out

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.mp4").write_bytes(b"junk")
    shutil.copy(small_video, bad / "fine.mp4")
    assert split_main([str(bad), str(tmp_path / "o2"), "-q"]) == 1  # anything skipped: non-zero
    assert f"skipped: {bad / 'broken.mp4'}: is not a readable video" in capsys.readouterr().err
    assert split_main([str(tmp_path / "nothing_here"), str(tmp_path / "o3"), "-q"]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        split_main([str(small_video), str(out), "--filter-shorter-than", "ten"])
    assert exit_info.value.code == 2
    assert "cannot read 'ten'" in capsys.readouterr().err


def test_sample_clips_for_the_demo(tmp_path: Path) -> None:
    paths = synthetic.make_sample_clips(tmp_path / "samples")
    assert [p.name for p in paths] == [name for name, *_ in synthetic.SAMPLE_CLIPS]
    for path, (_, cuts, num_frames, _) in zip(paths, synthetic.SAMPLE_CLIPS, strict=True):
        assert path.stat().st_size < 400_000
        info = media.probe_media(path)
        assert (info.width, info.height, info.num_frames) == (256, 192, num_frames)
        times = scenes.detect_scene_times(path, SplitSettings())
        planned, _ = scenes.plan_scenes(times, scenes._frame_times(path))
        assert [s.start_frame for s in planned[1:]] == list(cuts), path.name


# ----------------------------------------------------------------------------- bad input, unwritable output


def test_unreadable_video_is_one_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"this is not a video" * 50)
    assert split_main([str(bad), str(tmp_path / "out"), "-q"]) == 2  # nothing could be split: a failure
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and f"error: {bad}: is not a readable video" in err
    assert "Re-encode" in err and "remove it" in err
    assert "Errno" not in err and "1094995529" not in err and "filter" not in err


def test_split_scenes_node_names_the_unreadable_video(small_video: Path, tmp_path: Path, monkeypatch) -> None:
    from ltx_train_lib.errors import DatasetError
    from nodes import NODE_CLASS_MAPPINGS, comfy

    monkeypatch.setenv(comfy.ROOT_ENV, str(tmp_path / "comfy"))
    raw = tmp_path / "comfy" / "input" / "raw"
    raw.mkdir(parents=True)
    (raw / "broken.mp4").write_bytes(b"junk")
    load = NODE_CLASS_MAPPINGS["LTXTrainer_LoadVideos"]()
    videos = load.load(folder="raw", recursive=False, include_images=False, dataset_name="")["result"][0]
    settings = dict(detector="content", threshold=0.0, min_scene_length="", filter_shorter_than="", max_scenes=0, crf=28)
    split = NODE_CLASS_MAPPINGS["LTXTrainer_SplitScenes"]()
    with pytest.raises(DatasetError) as info:
        split.split(videos, **settings)
    message = str(info.value)
    assert f"{raw / 'broken.mp4'}: is not a readable video" in message and "remove it" in message
    assert "filter_shorter_than" not in message and "Errno" not in message

    # The filter hint comes only when the filter is what removed every scene.
    (raw / "broken.mp4").unlink()
    shutil.copy(small_video, raw / "fine.mp4")
    videos = load.load(folder="raw", recursive=False, include_images=False, dataset_name="")["result"][0]
    with pytest.raises(DatasetError, match=r"All 2 scene\(s\) .* shorter than filter_shorter_than '10s'\. Lower"):
        split.split(videos, **{**settings, "filter_shorter_than": "10s"})


def test_output_folder_that_cannot_be_created(small_video: Path, tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("keep me")
    assert split_main([str(small_video), str(blocker / "clips"), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "Traceback" not in err
    assert f"error: output folder {blocker / 'clips'}: cannot be created: {blocker} is a file, not a folder." in err
    assert "Choose another folder" in err
    assert blocker.read_text() == "keep me"


def test_disk_full_while_splitting_keeps_the_videos_already_split(
    small_video: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import errno

    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    shutil.copy(small_video, src / "a.mp4")
    assert split_main([str(src), str(out), "-q"]) == 0
    before = {name: (out / name).read_bytes() for name in _files(out)}
    shutil.copy(small_video, src / "b.mp4")
    real = media.VideoWriter.write_frame

    def disk_full(self: media.VideoWriter, frame) -> None:  # noqa: ANN001 - where the encoder's bytes reach the disk
        if self.frames_written == 5:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(self, frame)

    monkeypatch.setattr(media.VideoWriter, "write_frame", disk_full)
    capsys.readouterr()
    assert split_main([str(src), str(out), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "Traceback" not in err and "Errno" not in err
    assert f"error: output folder {out}: the disk is full (" in err and "Free some disk space" in err
    assert "clips of the videos split before are kept" in err
    assert {name: (out / name).read_bytes() for name in _files(out)} == before  # a's clips and manifest untouched
    assert [p.name for p in out.iterdir() if p.name.startswith(".") and p.name != scenes.MANIFEST_NAME] == []
    monkeypatch.setattr(media.VideoWriter, "write_frame", real)
    assert [r.status for r in split_folder(src, out).results] == ["unchanged", "split"]


def test_too_little_free_space_is_found_before_writing(
    small_video: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=1000))
    out = tmp_path / "out"
    assert split_main([str(small_video), str(out), "-q"]) == 2
    err = capsys.readouterr().err
    size = small_video.stat().st_size
    assert f"error: output folder {out}: not enough free disk space: about {size / 1000:.1f} KB will be" in err
    assert "only 1.0 KB is free" in err and not list(out.glob("*.mp4"))
