"""Audio on real files: reading spans with read_audio, writing AAC beside frames, split clips that keep their sound."""

from __future__ import annotations

import json
import shutil
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from ltx_train_lib import audio, media, scenes, synthetic
from ltx_train_lib.audio import AudioClip, read_audio
from ltx_train_lib.errors import DatasetError

ROOT = Path(__file__).resolve().parents[1]
AAC_FRAME = 1024  # samples per AAC frame: the granularity of an AAC track's length


def dominant_hz(samples: np.ndarray, sample_rate: int) -> float:
    """Frequency of the strongest FFT bin of the channel mean (Hann window: no leakage from the span's edges)."""
    x = samples.mean(axis=0) if samples.ndim == 2 else samples
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.shape[-1])))
    return float(np.argmax(spectrum) * sample_rate / x.shape[-1])


def tone(freq: float, seconds: float, sample_rate: int, level: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    return (level * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def black(frames: int, w: int = 64, h: int = 48) -> np.ndarray:
    return np.zeros((frames, h, w, 3), np.uint8)


def streams(path: Path) -> list[tuple[str, str]]:
    with av.open(str(path)) as c:
        return [(s.type, s.codec_context.name) for s in c.streams]


def durations(path: Path) -> tuple[float, float, int]:
    """(video seconds, audio seconds, audio sample rate) from the container."""
    with av.open(str(path)) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        return float(v.duration * v.time_base), float(a.duration * a.time_base), a.codec_context.sample_rate


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("audio")
    stereo = np.stack([tone(1000, 2.0, 48000), tone(1500, 2.0, 48000, 0.3)])
    click = stereo.copy()
    click[:, round(1.2345 * 48000)] = 0.95  # one loud sample: where it comes back shows the alignment
    return {
        "tone": media.write_video(d / "tone.mp4", black(48), 24, audio=stereo, audio_sample_rate=48000),
        "click": media.write_video(d / "click.mp4", black(48), 24, audio=click, audio_sample_rate=48000),
        "mono": media.write_video(d / "mono.mp4", black(24), 24, audio=tone(440, 1.0, 22050), audio_sample_rate=22050),
        "silent": media.write_video(d / "silent.mp4", black(24), 24),
        "scene": synthetic.make_scene_video(d / "scene.mp4", cuts=(), num_frames=36, size=(64, 48), audio=True),
    }


# ----------------------------------------------------------------------------- reading


def test_known_tone_comes_back_at_16k(files: dict[str, Path]) -> None:
    clip = read_audio(files["tone"], start=0.0, duration=2.0, sample_rate=16000)
    assert clip is not None
    assert clip.samples.shape == (2, 32000) and clip.samples.dtype == np.float32
    assert clip.sample_rate == 16000 and clip.padded_seconds == 0.0
    assert (clip.source_sample_rate, clip.source_channels, clip.source_codec) == (48000, 2, "aac")
    assert float(np.abs(clip.samples).max()) <= 1.0
    assert dominant_hz(clip.samples[0], 16000) == pytest.approx(1000, abs=1)
    assert dominant_hz(clip.samples[1], 16000) == pytest.approx(1500, abs=1)  # channels not swapped or mixed
    level = np.sqrt((clip.samples[:, 4000:28000] ** 2).mean(axis=1))  # away from the codec's start transient
    assert level == pytest.approx([0.5 / np.sqrt(2), 0.3 / np.sqrt(2)], rel=0.05)


def test_synthetic_scene_sound(files: dict[str, Path]) -> None:
    clip = read_audio(files["scene"], duration=1.5, sample_rate=16000)
    assert clip is not None and clip.samples.shape == (2, 24000) and clip.padded_seconds == 0.0
    assert dominant_hz(clip.samples, 16000) == pytest.approx(synthetic.SEGMENT_TONES_HZ[0], abs=1)
    left, right = np.sqrt((clip.samples**2).mean(axis=1))
    assert left > 1.5 * right  # segment kind 0 is panned left
    expected = synthetic.scene_audio(cuts=(), num_frames=36, fps=24)
    assert expected.shape == (2, 24000)
    assert np.abs(clip.samples[:, 2000:] - expected[:, 2000:]).mean() < 0.03  # the same waveform, in time


def test_span_is_sample_accurate_after_a_seek(files: dict[str, Path]) -> None:
    full = read_audio(files["click"], duration=2.0, sample_rate=48000)
    part = read_audio(files["click"], start=1.0, duration=0.5, sample_rate=48000)
    assert full is not None and part is not None and part.samples.shape == (2, 24000)
    assert int(np.argmax(np.abs(np.diff(full.samples[0])))) in range(59254, 59258)  # the click at 1.2345 s
    assert int(np.argmax(np.abs(np.diff(part.samples[0])))) in range(11254, 11258)  # 0.2345 s into the span
    # Seeking decodes the same samples as reading from the start (away from the click, where AAC's noise
    # substitution draws from a decoder state that a seek resets).
    steady = read_audio(files["tone"], duration=2.0, sample_rate=48000)
    steady_part = read_audio(files["tone"], start=1.0, duration=0.5, sample_rate=48000)
    assert steady is not None and steady_part is not None
    assert np.abs(steady_part.samples - steady.samples[:, 48000:72000]).max() < 1e-3


def test_mono_source_becomes_two_equal_channels(files: dict[str, Path]) -> None:
    info = audio.audio_stream_info(files["mono"])
    assert info is not None and (info.channels, info.sample_rate, info.codec) == (1, 22050, "aac")
    clip = read_audio(files["mono"], duration=1.0, sample_rate=16000)
    assert clip is not None and clip.samples.shape == (2, 16000)
    assert np.array_equal(clip.samples[0], clip.samples[1])
    # Copied, not mixed down by 3 dB as FFmpeg's mono -> stereo does.
    assert np.sqrt((clip.samples[0, 2000:14000] ** 2).mean()) == pytest.approx(0.5 / np.sqrt(2), rel=0.05)
    assert dominant_hz(clip.samples[0], 16000) == pytest.approx(440, abs=1)
    one = read_audio(files["mono"], duration=1.0, sample_rate=16000, channels=1)
    assert one is not None and one.samples.shape == (1, 16000)


def test_span_past_the_end_is_zero_padded_and_reported(files: dict[str, Path]) -> None:
    clip = read_audio(files["tone"], start=1.75, duration=1.0, sample_rate=16000)
    assert clip is not None and clip.samples.shape == (2, 16000)
    assert clip.padded_seconds == pytest.approx(0.75, abs=1 / 16000)  # the track's stated end, not its last AAC frame
    assert np.all(clip.samples[:, 4004:] == 0)
    assert np.abs(clip.samples[:, :3990]).max() > 0.3
    late = read_audio(files["tone"], start=5.0, duration=0.5, sample_rate=16000)
    assert late is not None and late.padded_seconds == pytest.approx(0.5) and not late.samples.any()


def test_no_audio_stream_gives_none(files: dict[str, Path], tmp_path: Path) -> None:
    assert read_audio(files["silent"], duration=1.0, sample_rate=16000) is None
    assert audio.audio_stream_info(files["silent"]) is None and not audio.has_audio(files["silent"])
    assert audio.has_audio(files["tone"])
    image = synthetic.make_image(tmp_path / "still.png")
    assert read_audio(image, duration=1.0, sample_rate=16000) is None
    assert not media.probe_media(files["silent"]).has_audio and media.probe_media(files["tone"]).has_audio


def test_bad_arguments(files: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="duration"):
        read_audio(files["tone"], duration=0.0, sample_rate=16000)
    with pytest.raises(ValueError, match="channels"):
        read_audio(files["tone"], duration=1.0, sample_rate=16000, channels=6)
    with pytest.raises(DatasetError, match="file not found"):
        read_audio(files["tone"].with_name("missing.mp4"), duration=1.0, sample_rate=16000)


def test_corrupt_audio_is_a_clear_error(files: dict[str, Path], tmp_path: Path) -> None:
    bad = shutil.copy(files["mono"], tmp_path / "bad_sound.mp4")
    with av.open(str(bad)) as c:
        packets = [(p.pos, p.size) for p in c.demux(c.streams.audio[0]) if p.size]
    data = bytearray(Path(bad).read_bytes())
    rng = np.random.default_rng(0)
    for pos, size in packets[3:]:  # the video stays intact; the sound is garbage
        data[pos : pos + size] = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
    Path(bad).write_bytes(bytes(data))
    with pytest.raises(DatasetError) as info:
        read_audio(bad, duration=1.0, sample_rate=16000)
    message = str(info.value)
    assert message.startswith(f"{bad}: has an audio track that cannot be decoded")
    assert "-c:a aac" in message and "-an" in message and "Errno" not in message


def test_millisecond_timestamps_do_not_break_the_sound(tmp_path: Path) -> None:
    """Matroska stamps AAC frames of 21.33 ms as 21, 43, 64 ms: the samples must still follow each other."""
    rate = 48000
    x = tone(440, 1.5, rate)
    x[round(0.8 * rate)] = 0.95
    path = tmp_path / "ms.mkv"
    with av.open(str(path), "w", format="matroska") as c:
        video = c.add_stream("libx264", rate=24)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        sound = c.add_stream("aac", rate=rate)
        sound.layout = "mono"
        for i in range(36):
            frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 24)
            c.mux(video.encode(frame))
        frame = av.AudioFrame.from_ndarray(x[None], format="fltp", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = rate, 0, Fraction(1, rate)
        c.mux(sound.encode(frame))
        c.mux(sound.encode(None))
        c.mux(video.encode(None))
    clip = read_audio(path, duration=1.5, sample_rate=rate)
    assert clip is not None
    jumps = np.abs(np.diff(clip.samples[0]))
    assert int(np.argmax(jumps)) in range(38398, 38402)  # the click, not a seam between frames
    smooth = np.ones_like(jumps, bool)
    smooth[:2048] = smooth[38400 - 200 : 38400 + 200] = False  # AAC's start transient, the smeared click
    assert jumps[smooth].max() < 0.08  # a 440 Hz tone at 0.5 moves <= 0.03 per sample: no seam anywhere
    assert clip.padded_seconds == 0.0


# ----------------------------------------------------------------------------- writing


def test_write_video_with_audio_has_one_video_and_one_audio_stream(files: dict[str, Path]) -> None:
    assert streams(files["tone"]) == [("video", "h264"), ("audio", "aac")]
    video_s, audio_s, rate = durations(files["tone"])
    assert video_s == pytest.approx(2.0) and rate == 48000
    assert abs(audio_s - video_s) * rate < AAC_FRAME
    assert [p.name for p in files["tone"].parent.iterdir() if p.name.endswith(".tmp")] == []
    frames, fps = media.read_video_frames(files["tone"])
    assert frames.shape == (48, 48, 64, 3) and fps == 24.0


def test_write_video_audio_arguments(tmp_path: Path) -> None:
    clip = AudioClip(tone(300, 0.5, 24000), 24000)  # an AudioClip: its own rate
    out = media.write_video(tmp_path / "clip.mp4", black(12), 24, audio=clip)
    back = read_audio(out, duration=0.5, sample_rate=24000, channels=1)
    assert back is not None and dominant_hz(back.samples, 24000) == pytest.approx(300, abs=2)
    odd_rate = media.write_video(tmp_path / "odd.mp4", black(12), 24, audio=tone(300, 0.5, 37800), audio_sample_rate=37800)
    assert durations(odd_rate)[2] == 48000  # AAC cannot store 37.8 kHz: resampled on the way in
    with pytest.raises(ValueError, match="audio_sample_rate"):
        media.write_video(tmp_path / "x.mp4", black(4), 24, audio=tone(300, 0.5, 16000))
    with pytest.raises(ValueError, match="floats"):
        media.write_video(tmp_path / "x.mp4", black(4), 24, audio=np.zeros(800, np.int16), audio_sample_rate=16000)
    with pytest.raises(ValueError, match="1 or 2 channels"):
        media.write_video(tmp_path / "x.mp4", black(4), 24, audio=np.zeros((6, 800), np.float32), audio_sample_rate=16000)
    assert not (tmp_path / "x.mp4").exists()


def _reference_h264(path: Path, frames: np.ndarray, fps: int) -> None:
    """What write_video wrote before audio existed: one libx264 stream, crf 18, veryfast, pts = frame index."""
    with av.open(str(path), "w", format="mp4") as c:
        stream = c.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"crf": "18", "preset": "veryfast"}
        stream.codec_context.time_base = Fraction(1, fps)
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            c.mux(stream.encode(frame))
        c.mux(stream.encode(None))


def test_write_video_without_audio_is_unchanged(tmp_path: Path) -> None:
    frames = np.stack(list(synthetic.scene_frames(cuts=(6,), num_frames=12, size=(64, 48))))
    out = media.write_video(tmp_path / "plain.mp4", frames, 24)
    _reference_h264(tmp_path / "reference.mp4", frames, 24)
    assert streams(out) == [("video", "h264")]
    assert out.read_bytes() == (tmp_path / "reference.mp4").read_bytes()
    again = synthetic.make_scene_video(tmp_path / "again.mp4", cuts=(6,), num_frames=12, size=(64, 48))
    assert again.read_bytes() == out.read_bytes()  # audio=False (the default) takes the same path


# ----------------------------------------------------------------------------- bundled samples


def test_bundled_sample_clips_have_each_scenes_sound() -> None:
    for name, cuts, num_frames, seed in synthetic.SAMPLE_CLIPS:
        path = ROOT / "samples" / "clips" / name
        assert streams(path) == [("video", "h264"), ("audio", "aac")], name
        assert path.stat().st_size < 100_000, name
        for n, (start, end) in enumerate(synthetic.segment_bounds(cuts, num_frames)):
            clip = read_audio(path, start=start / 24, duration=(end - start) / 24, sample_rate=16000)
            assert clip is not None and clip.padded_seconds == 0.0
            kind = (n + seed) % len(synthetic.SEGMENTS)
            assert dominant_hz(clip.samples, 16000) == pytest.approx(synthetic.SEGMENT_TONES_HZ[kind], abs=1.5), name
    assert synthetic.scene_caption((60,), 120, sound=True) == (
        "a yellow square moving across a red background, with a steady low tone, then light blue and dark blue "
        "diagonal stripes scrolling sideways, with a pulsing tone"
    )


# ----------------------------------------------------------------------------- scene splitting


@pytest.fixture(scope="module")
def split_with_sound(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, scenes.SplitSummary]:
    src = tmp_path_factory.mktemp("sound_src")
    # 30 fps so the scene edges (frames 0/27/63) do not fall on whole 16 kHz AAC frames.
    synthetic.make_scene_video(src / "loud.mp4", cuts=(27,), num_frames=63, fps=30, size=(96, 64), audio=True)
    synthetic.make_scene_video(src / "quiet.mp4", cuts=(24,), num_frames=48, size=(96, 64), seed=1)
    out = tmp_path_factory.mktemp("sound_out")
    return src, out, scenes.split_folder(src, out)


def test_split_clips_keep_their_scenes_sound(split_with_sound: tuple[Path, Path, scenes.SplitSummary]) -> None:
    src, out, summary = split_with_sound
    loud = [r for r in summary.results if r.source.name == "loud.mp4"][0]
    assert [c.frames for c in loud.clips] == [27, 36] and all(c.has_audio for c in loud.clips)
    for n, info in enumerate(loud.clips):
        path = out / info.file
        assert streams(path) == [("video", "h264"), ("audio", "aac")]
        video_s, audio_s, rate = durations(path)
        assert rate == 16000 and video_s == pytest.approx(info.frames / 30)
        assert abs(audio_s - video_s) * rate < AAC_FRAME  # the sound lasts as long as the pictures
        clip = read_audio(path, duration=video_s, sample_rate=16000)
        assert clip is not None and clip.padded_seconds < AAC_FRAME / 16000
        assert dominant_hz(clip.samples, 16000) == pytest.approx(synthetic.SEGMENT_TONES_HZ[n], abs=2), info.file
    manifest = json.loads((out / scenes.MANIFEST_NAME).read_text())
    recorded = {c["file"]: c["has_audio"] for v in manifest["videos"].values() for c in v["clips"]}
    assert recorded == {
        "loud-Scene-001.mp4": True,
        "loud-Scene-002.mp4": True,
        "quiet-Scene-001.mp4": False,
        "quiet-Scene-002.mp4": False,
    }


def test_split_summary_names_clips_without_sound(split_with_sound: tuple[Path, Path, scenes.SplitSummary]) -> None:
    src, out, summary = split_with_sound
    assert [p.name for p in summary.clips_without_audio] == ["quiet-Scene-001.mp4", "quiet-Scene-002.mp4"]
    assert streams(out / "quiet-Scene-001.mp4") == [("video", "h264")]
    assert "sound: 2 of 4 clips; without: quiet-Scene-001.mp4, quiet-Scene-002.mp4" in summary.text()
    again = scenes.split_folder(src, out)  # the manifest keeps has_audio for clips it does not redo
    assert [r.status for r in again.results] == ["unchanged", "unchanged"]
    assert [p.name for p in again.clips_without_audio] == ["quiet-Scene-001.mp4", "quiet-Scene-002.mp4"]
    names = [f"v{i}.mp4" for i in range(7)]
    assert scenes.audio_line(9, names, "videos") == (
        "sound: 2 of 9 videos; without: v0.mp4, v1.mp4, v2.mp4, v3.mp4, v4.mp4 and 2 more"
    )


def test_split_without_audio_option(tmp_path: Path) -> None:
    src = synthetic.make_scene_video(tmp_path / "v.mp4", cuts=(24,), num_frames=48, size=(96, 64), audio=True)
    summary = scenes.split_folder(src, tmp_path / "out", scenes.SplitSettings(keep_audio=False))
    assert len(summary.clips) == 2 and summary.clips_without_audio == summary.clips
    assert all(streams(p) == [("video", "h264")] for p in summary.clips)


def test_split_scenes_cli_no_audio_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ltx_train_lib.cli.split_scenes import main as split_main

    src = synthetic.make_scene_video(tmp_path / "v.mp4", cuts=(24,), num_frames=48, size=(96, 64), audio=True)
    assert split_main([str(src), str(tmp_path / "with"), "-q"]) == 0
    assert "sound: 2 of 2 clips" in capsys.readouterr().out
    assert streams(tmp_path / "with" / "v-Scene-001.mp4") == [("video", "h264"), ("audio", "aac")]
    assert split_main([str(src), str(tmp_path / "without"), "-q", "--no-audio"]) == 0
    assert "sound: 0 of 2 clips; without: v-Scene-001.mp4, v-Scene-002.mp4" in capsys.readouterr().out
    assert streams(tmp_path / "without" / "v-Scene-001.mp4") == [("video", "h264")]
