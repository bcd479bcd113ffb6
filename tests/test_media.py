"""Media loading on files written by the tests: frame counts, VFR resampling, rotation, images, bad inputs."""

from __future__ import annotations

import os
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from ltx_train_lib import media, synthetic
from ltx_train_lib.errors import DatasetError


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("media")
    return {
        "plain": synthetic.make_scene_video(d / "plain.mp4", cuts=(10,), num_frames=20, size=(64, 48)),
        "vfr": synthetic.make_vfr_video(d / "vfr.mp4"),
        "rot90": synthetic.make_rotated_video(d / "rot90.mp4", rotation=90),
        "rot270": synthetic.make_rotated_video(d / "rot270.mp4", rotation=270),
    }


def _mean_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def test_extensions_and_kind() -> None:
    assert media.is_video("a/B.MP4") and media.is_video("x.webm") and not media.is_video("x.png")
    assert media.is_image("x.JPeG") and media.is_image("x.webp") and not media.is_image("x.mov")
    assert all(e.startswith(".") and e == e.lower() for e in media.VIDEO_EXTENSIONS | media.IMAGE_EXTENSIONS)


def test_probe_and_read_plain_video(clips: dict[str, Path]) -> None:
    info = media.probe_media(clips["plain"])
    assert (info.kind, info.num_frames, info.fps, info.width, info.height) == ("video", 20, 24.0, 64, 48)
    assert not info.variable_frame_rate and info.rotation == 0 and not info.has_audio
    assert info.duration == pytest.approx(20 / 24)
    frames, fps = media.read_video_frames(clips["plain"])
    assert frames.shape == (20, 48, 64, 3) and frames.dtype == np.uint8 and fps == 24.0
    # Content matches what was written (lossy codec: compare loosely, and against the wrong frame too).
    expected = list(synthetic.scene_frames(cuts=(10,), num_frames=20, size=(64, 48)))
    assert _mean_abs(frames[5], expected[5]) < 6
    assert _mean_abs(frames[5], expected[15]) > 30
    part, _ = media.read_video_frames(clips["plain"], start=4, max_frames=3)
    assert np.array_equal(part, frames[4:7])
    half, fps = media.read_video_frames(clips["plain"], fps=12)
    assert fps == 12.0 and len(half) == 10
    assert np.array_equal(half[3], frames[6])  # tick 3 at 12 fps = 0.25 s = frame 6 at 24 fps


def test_variable_frame_rate(clips: dict[str, Path]) -> None:
    ticks = synthetic.vfr_ticks()  # 48 ticks of 1/24 s, every 5th dropped
    info = media.probe_media(clips["vfr"])
    assert info.variable_frame_rate
    assert info.num_frames == len(ticks) < 48
    assert info.duration == pytest.approx(2.0)
    native, _ = media.read_video_frames(clips["vfr"])
    assert len(native) == len(ticks)
    resampled, fps = media.read_video_frames(clips["vfr"], fps=24)
    assert fps == 24.0 and len(resampled) == 48  # 2 s at 24 fps, dropped ticks filled by a neighbour
    for n, t in enumerate(ticks):  # every kept tick comes back as its own frame
        assert np.array_equal(resampled[t], native[n])
    assert len(media.read_video_frames(clips["vfr"], fps=8)[0]) == 16


@pytest.mark.parametrize(("name", "k"), [("rot90", 1), ("rot270", -1)])
def test_rotated_video(clips: dict[str, Path], name: str, k: int) -> None:
    info = media.probe_media(clips[name])
    assert info.rotation == (90 if k == 1 else 270)
    assert (info.width, info.height) == (96, 160)  # stored 160x96, displayed upright
    frames, _ = media.read_video_frames(clips[name], max_frames=2)
    assert frames.shape == (2, 160, 96, 3)
    raw = next(synthetic.scene_frames(cuts=(), num_frames=1, size=(160, 96)))
    right, wrong = _mean_abs(frames[0], np.rot90(raw, k=k)), _mean_abs(frames[0], np.rot90(raw, k=-k))
    assert right < 3 < wrong
    # The yellow square sits at the left edge of the stored frame: turned 90° counter-clockwise it is at
    # the bottom, turned 270° (90° clockwise) at the top.
    rows = np.nonzero((frames[0, :, :, 2] < 120) & (frames[0, :, :, 1] > 200))[0]
    assert rows.size > 100
    assert (rows.mean() > 120) if k == 1 else (rows.mean() < 40)


def test_write_video_roundtrip_and_odd_size(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frames = np.repeat(rng.integers(0, 256, (1, 33, 47, 3), dtype=np.uint8), 6, axis=0)
    out = media.write_video(tmp_path / "sub" / "odd.mp4", frames, fps=30000 / 1001)
    back, fps = media.read_video_frames(out)
    assert back.shape == (6, 32, 46, 3)  # cropped to even for yuv420p
    assert fps == pytest.approx(29.97, abs=1e-3)
    assert [p.name for p in out.parent.iterdir()] == ["odd.mp4"]  # no temp file left behind
    with pytest.raises(ValueError, match="uint8"):
        media.write_video(tmp_path / "f.mp4", frames.astype(np.float32), 24)
    assert not (tmp_path / "f.mp4").exists()


def test_images_and_exif(tmp_path: Path) -> None:
    png = synthetic.make_image(tmp_path / "a.png", size=(96, 64))
    info = media.probe_media(png)
    assert (info.kind, info.num_frames, info.width, info.height, info.fps) == ("image", 1, 96, 64, 1.0)
    frames, fps = media.read_video_frames(png)
    assert frames.shape == (1, 64, 96, 3) and fps == 1.0
    # EXIF orientation 6 ("rotate 90 CW to display"): load_image returns the upright picture.
    pixels = media.load_image(png)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(pixels).save(tmp_path / "b.jpg", exif=exif, quality=95)
    upright = media.load_image(tmp_path / "b.jpg")
    assert upright.shape == (96, 64, 3)
    assert _mean_abs(upright, np.rot90(pixels, k=-1)) < 8
    grey = tmp_path / "g.webp"
    Image.fromarray(pixels[..., 0]).save(grey)
    assert media.load_image(grey).shape == (64, 96, 3)


def test_list_media_order(tmp_path: Path) -> None:
    for rel in [
        "b.png",
        "A.jpg",
        "a.mp4",
        "sub/c.MOV",
        "sub/deeper/z.webp",
        "Sub2/x.mkv",
        "notes.txt",
        ".hidden/h.mp4",
    ]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    (tmp_path / ".a.mp4.tmp").write_bytes(b"x")
    rel = lambda paths: [p.relative_to(tmp_path).as_posix() for p in paths]  # noqa: E731
    assert rel(media.list_media(tmp_path)) == [
        "A.jpg",
        "Sub2/x.mkv",
        "a.mp4",
        "b.png",
        "sub/c.MOV",
        "sub/deeper/z.webp",
    ]
    assert rel(media.list_media(tmp_path, recursive=False)) == ["A.jpg", "a.mp4", "b.png"]
    assert rel(media.list_media(tmp_path, kinds=("video",))) == ["Sub2/x.mkv", "a.mp4", "sub/c.MOV"]
    with pytest.raises(DatasetError, match="not a folder"):
        media.list_media(tmp_path / "a.mp4")


def test_resize_and_crop() -> None:
    clip = np.zeros((2, 100, 200, 3), np.uint8)
    clip[:, :, 90:110] = 255  # a white bar in the middle
    out = media.resize_and_crop(clip, 64, 64)
    assert out.shape == (2, 64, 64, 3)
    assert out[0, :, 32].min() > 200 and out[0, :, 0].max() < 30  # centre kept, sides cut
    tall = media.resize_and_crop(clip[0], 32, 96)
    assert tall.shape == (96, 32, 3)
    rng = np.random.default_rng(0)
    crops = {media.resize_and_crop(clip, 50, 100, mode="random", rng=rng)[0].tobytes() for _ in range(8)}
    assert len(crops) > 1  # random crops move
    with pytest.raises(ValueError, match="mode"):
        media.resize_and_crop(clip, 8, 8, mode="edge")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- bad inputs


def make_bad_inputs(folder: Path, good: Path) -> dict[str, tuple[Path, str]]:
    """Bad files of every kind, with the phrase each message must hold. Shared with test_scenes."""
    folder.mkdir(parents=True, exist_ok=True)
    bad: dict[str, tuple[Path, str]] = {}
    garbage = folder / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    bad["unreadable"] = (garbage, "not a readable video")
    empty = folder / "empty.mov"
    empty.write_bytes(b"")
    bad["empty"] = (empty, "not a readable video")
    data = good.read_bytes()
    (folder / "truncated.mp4").write_bytes(data[: len(data) // 2])  # header (moov) is at the end: lost
    bad["truncated"] = (folder / "truncated.mp4", "not a readable video")
    # Header first (faststart), data cut: FFmpeg would decode the first part silently.
    with av.open(str(good)) as src, av.open(str(folder / "fs.mp4"), "w", options={"movflags": "faststart"}) as dst:
        s_in = src.streams.video[0]
        s_out = dst.add_stream_from_template(s_in)
        for packet in src.demux(s_in):
            if packet.size:
                packet.stream = s_out
                dst.mux(packet)
    fs = (folder / "fs.mp4").read_bytes()
    (folder / "cut_data.mp4").write_bytes(fs[: len(fs) // 2])
    (folder / "fs.mp4").unlink()
    bad["cut_data"] = (folder / "cut_data.mp4", "truncated")
    with av.open(str(folder / "zero_frames.avi"), "w") as c:
        s = c.add_stream("libx264", rate=24)
        s.width, s.height, s.pix_fmt = 64, 64, "yuv420p"
        c.start_encoding()
    bad["zero_frames"] = (folder / "zero_frames.avi", "zero frames")
    with av.open(str(folder / "audio_only.mp4"), "w") as c:
        a = c.add_stream("aac", rate=16000)
        t = np.arange(8000, dtype=np.float32) / 16000
        frame = av.AudioFrame.from_ndarray(np.sin(2 * np.pi * 440 * t)[None], format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 16000, 0
        c.mux(a.encode(frame))
        c.mux(a.encode(None))
    bad["audio_only"] = (folder / "audio_only.mp4", "no video stream")
    return bad


def test_bad_inputs_name_file_problem_and_fix(tmp_path: Path, clips: dict[str, Path]) -> None:
    bad = make_bad_inputs(tmp_path, clips["plain"])
    for kind, (path, phrase) in bad.items():
        with pytest.raises(DatasetError) as info:
            media.probe_media(path)
        message = str(info.value)
        assert str(path) in message, kind
        assert phrase in message, (kind, message)
        assert any(w in message for w in ("Re-encode", "Use a video", "again")), (kind, message)
    for call in (media.probe_media, media.read_video_frames):
        with pytest.raises(DatasetError, match="file not found"):
            call(tmp_path / "missing.mp4")
    with pytest.raises(DatasetError, match="unsupported file type"):
        media.probe_media(tmp_path / "x.txt")
    not_png = tmp_path / "broken.png"
    not_png.write_bytes(b"not a png")
    with pytest.raises(DatasetError, match=r"broken\.png: is not a readable image"):
        media.load_image(not_png)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_permission_denied(tmp_path: Path, clips: dict[str, Path]) -> None:
    locked = tmp_path / "locked.mp4"
    locked.write_bytes(clips["plain"].read_bytes())
    locked.chmod(0)
    with pytest.raises(DatasetError, match="locked.mp4.*permission"):
        media.probe_media(locked)


def test_writer_with_no_frames_leaves_no_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no frames"):
        with media.VideoWriter(tmp_path / "empty.mp4", 24):
            pass
    assert list(tmp_path.iterdir()) == []


def test_mkv_millisecond_timestamps_are_constant_rate(tmp_path: Path) -> None:
    # Matroska stores no frame count and millisecond timestamps (24 fps = 41/42 ms): still CFR, 48 frames.
    path = tmp_path / "clip.mkv"
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=24)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for frame in synthetic.scene_frames(cuts=(), num_frames=48, size=(64, 48)):
            c.mux(s.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        c.mux(s.encode(None))
    info = media.probe_media(path)
    assert (info.num_frames, info.fps, info.variable_frame_rate) == (48, 24.0, False)
    assert info.duration == pytest.approx(2.0)
    assert len(media.read_video_frames(path, fps=24)[0]) == 48
