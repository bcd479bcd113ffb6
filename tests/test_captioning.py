"""Captioning with the tiny random-weight Qwen2.5-VL, loaded exactly like the real model (from_pretrained on a folder)."""

from __future__ import annotations

import gc
import json
import os
import weakref
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never download anything

import av
import numpy as np
import pytest

from ltx_train_lib import synthetic
from ltx_train_lib.captioning import (
    DEFAULT_IMAGE_INSTRUCTION,
    DEFAULT_INSTRUCTION,
    CaptioningError,
    QwenCaptioner,
    caption_media,
    clean_caption,
    read_media,
    resolve_captioner_model,
)
from ltx_train_lib.captions_io import read_captions, read_captions_checked
from ltx_train_lib.cli.caption import main as caption_main
from ltx_train_lib.errors import DatasetError, ModelLoadError
from ltx_train_lib.models.tiny_qwen import MARKER_FILE, build_tiny_qwen_vl

TOKENS = 6  # short captions keep the tests fast; the tiny model's vocabulary makes each token a word piece


@pytest.fixture(scope="session")
def tiny_qwen(tmp_path_factory) -> Path:
    """The tiny captioner built once per session in a private cache, which is what model="tiny" resolves to."""
    cache = tmp_path_factory.mktemp("ltx_cache")
    old = os.environ.get("LTX_TRAIN_CACHE")
    os.environ["LTX_TRAIN_CACHE"] = str(cache)
    folder = Path(resolve_captioner_model("tiny"))
    yield folder
    if old is None:
        os.environ.pop("LTX_TRAIN_CACHE", None)
    else:
        os.environ["LTX_TRAIN_CACHE"] = old


@pytest.fixture(scope="session")
def captioner(tiny_qwen):
    with QwenCaptioner("tiny", device="cpu", max_new_tokens=TOKENS) as c:
        yield c


def _video(path: Path, frames: int = 24, fps: float = 24, size=(96, 64), seed: int = 0) -> Path:
    return synthetic.make_scene_video(path, cuts=(), num_frames=frames, fps=fps, size=size, seed=seed)


def _audio_only(path: Path) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        stream.layout = "mono"
        for i in range(4):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, i * 1024
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


@pytest.fixture
def media_dir(tmp_path) -> Path:
    folder = tmp_path / "scenes"
    folder.mkdir()
    _video(folder / "clip_a.mp4", seed=1)
    _video(folder / "clip_b.mp4", frames=12, fps=12, size=(64, 96), seed=2)
    synthetic.make_image(folder / "still.png")
    _video(folder / "nested" / "deep.mp4", seed=3)  # only with recursive
    return folder


class CountingCaptioner:
    """Wraps a real captioner and counts the media it is asked to caption (the model calls)."""

    def __init__(self, inner: QwenCaptioner, fail_on_call: int | None = None) -> None:
        self.inner = inner
        self.fps, self.max_frames = inner.fps, inner.max_frames
        self.calls: list[list[str]] = []
        self.fail_on_call = fail_on_call

    def caption_samples(self, samples):
        self.calls.append([s.path.name for s in samples])
        if self.fail_on_call is not None and len(self.calls) == self.fail_on_call:
            raise RuntimeError("simulated crash")
        return self.inner.caption_samples(samples)

    @property
    def captioned(self) -> list[str]:
        return [name for call in self.calls for name in call]


# ----------------------------------------------------------------------------------------------- caption cleanup


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [
        ("The video shows a cat walking on a fence.", "A cat walking on a fence."),
        ("This image depicts a red car. It is parked.", "A red car. It is parked."),
        ("The animated sequence showcases a robot dancing.", "A robot dancing."),
        ("This scene captures waves. The video shows a boat.", "Waves. A boat."),
        # Each phrase is removed once, as in the reference.
        ("The video shows a dog. The video shows a ball.", "A dog. The video shows a ball."),
        # Mid-sentence removal keeps the following word's case.
        ("At night the camera moves and The video shows lights.", "At night the camera moves and lights."),
        # Case-sensitive and exact, as in the reference: these stay.
        ("the video shows a cat.", "the video shows a cat."),
        ("The video is dark.", "The video is dark."),
        ("  A plain caption.  ", "A plain caption."),
        ("", ""),
    ],
)
def test_clean_caption(raw, cleaned):
    assert clean_caption(raw) == cleaned


# ------------------------------------------------------------------------------------------------- tiny model


def test_tiny_model_is_a_labelled_local_qwen_folder(tiny_qwen):
    from transformers import AutoProcessor, Qwen2_5_VLProcessor

    assert (tiny_qwen / MARKER_FILE).read_text().startswith("This folder holds a TINY Qwen2.5-VL with RANDOM WEIGHTS")
    assert json.loads((tiny_qwen / "config.json").read_text())["model_type"] == "qwen2_5_vl"
    processor = AutoProcessor.from_pretrained(tiny_qwen)
    assert isinstance(processor, Qwen2_5_VLProcessor)
    assert type(processor.video_processor).__name__ == "Qwen2VLVideoProcessor"  # the real one (torchvision)
    # Resolving "tiny" again reuses the cached folder rather than rebuilding it.
    stamp = (tiny_qwen / "model.safetensors").stat().st_mtime_ns
    assert Path(resolve_captioner_model("tiny")) == tiny_qwen
    assert (tiny_qwen / "model.safetensors").stat().st_mtime_ns == stamp


def test_tiny_model_build_is_deterministic(tiny_qwen, tmp_path):
    other = build_tiny_qwen_vl(tmp_path / "again")
    for name in ("model.safetensors", "tokenizer.json", "config.json", "generation_config.json"):
        assert (other / name).read_bytes() == (tiny_qwen / name).read_bytes(), name


# --------------------------------------------------------------------------------------------------- captioner


def test_inputs_follow_the_reference_settings(captioner, media_dir):
    """Videos go in as videos at 3 fps and low resolution; images go in as images."""
    seen = []
    model = captioner.model
    original = model.generate

    def spy(**kwargs):
        seen.append(kwargs)
        return original(**kwargs)

    model.generate = spy
    try:
        video_caption, image_caption = (
            captioner.caption([media_dir / "clip_a.mp4"]),
            captioner.caption([media_dir / "still.png"]),
        )
    finally:
        del model.generate
    video_kwargs, image_kwargs = seen
    assert "pixel_values_videos" in video_kwargs and "pixel_values" not in video_kwargs
    # 1 s of video at 3 fps -> 3 frames -> 2 temporal patches of 2 frames; each spaced 2/3 s.
    assert video_kwargs["video_grid_thw"][0, 0].item() == 2
    assert video_kwargs["second_per_grid_ts"][0].item() == pytest.approx(2 / 3)
    t, h, w = video_kwargs["video_grid_thw"][0].tolist()
    assert 16 * 4 <= h * w <= 64 * 4  # 16..64 tokens per frame pair after the 2x2 merge
    assert "pixel_values" in image_kwargs and "pixel_values_videos" not in image_kwargs
    assert video_kwargs["max_new_tokens"] == TOKENS and video_kwargs["do_sample"] is False
    prompts = captioner._processor.batch_decode([video_kwargs["input_ids"][0], image_kwargs["input_ids"][0]])
    assert DEFAULT_INSTRUCTION in prompts[0] and "<|video_pad|>" in prompts[0]
    assert DEFAULT_IMAGE_INSTRUCTION in prompts[1] and "<|image_pad|>" in prompts[1]
    assert video_caption[0].strip() and image_caption[0].strip()


def test_batch_matches_single_captions(captioner, media_dir):
    files = [media_dir / "clip_a.mp4", media_dir / "still.png", media_dir / "clip_b.mp4"]
    batched = captioner.caption(files)
    assert batched == [captioner.caption_one(f) for f in files]


def test_long_video_is_sampled_sparsely_not_cut(tmp_path):
    path = _video(tmp_path / "long.mp4", frames=96, fps=24)  # 4 s
    sample = read_media(path, fps=3, max_frames=6)
    assert sample.kind == "video" and len(sample.pixels) <= 6
    assert sample.fps == pytest.approx(1.5)  # 6 frames spread over 4 s
    assert len(read_media(path, fps=3, max_frames=100).pixels) == 12


def test_close_releases_the_model(tiny_qwen, media_dir):
    captioner = QwenCaptioner("tiny", device="cpu", max_new_tokens=TOKENS)
    ref = weakref.ref(captioner.model)
    captioner.close()
    gc.collect()
    assert ref() is None
    assert captioner.closed
    with pytest.raises(CaptioningError, match="captioner for tiny is closed"):
        captioner.caption_one(media_dir / "still.png")
    captioner.close()  # twice is fine


def test_caption_media_releases_its_own_model(tiny_qwen, media_dir, monkeypatch):
    refs = []
    original = QwenCaptioner._load

    def recording_load(self, *args, **kwargs):
        model, processor = original(self, *args, **kwargs)
        refs.append(weakref.ref(model))
        return model, processor

    monkeypatch.setattr(QwenCaptioner, "_load", recording_load)
    caption_media(media_dir, model="tiny", device="cpu", max_new_tokens=TOKENS)
    gc.collect()
    assert len(refs) == 1 and refs[0]() is None


def test_8bit_needs_cuda(tiny_qwen):
    with pytest.raises(ModelLoadError, match=r"8-bit loading of tiny needs a CUDA GPU.*Drop --use-8bit"):
        QwenCaptioner("tiny", device="cpu", use_8bit=True)


def test_unloadable_models_are_named(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match=r"empty: not a Qwen2.5-VL model folder \(no config.json\)"):
        QwenCaptioner(tmp_path / "empty", device="cpu")
    with pytest.raises(ModelLoadError, match=r"captioning model 'no/such\?model' could not be loaded.*local"):
        QwenCaptioner("no/such?model", device="cpu")


# ---------------------------------------------------------------------------------------------- caption_media


def test_caption_media_end_to_end(tiny_qwen, media_dir):
    report = caption_media(media_dir, model="tiny", device="cpu", max_new_tokens=TOKENS, batch_size=2)
    out = media_dir / "captions.json"
    assert report.ok and report.output_path == out
    rows = json.loads(out.read_text(encoding="utf-8"))
    assert [r["media_path"] for r in rows] == ["clip_a.mp4", "clip_b.mp4", "still.png"]
    assert all(isinstance(r["caption"], str) and r["caption"].strip() for r in rows)
    assert read_captions_checked(out).problems == []
    recursive = caption_media(
        media_dir, media_dir / "all.jsonl", model="tiny", device="cpu", max_new_tokens=TOKENS, recursive=True
    )
    assert [e.media_path.name for e in read_captions(recursive.output_path)] == [
        "clip_a.mp4",
        "clip_b.mp4",
        "deep.mp4",
        "still.png",
    ]


def test_resume_skips_captioned_media_and_override_recaptions(captioner, media_dir):
    out = media_dir / "captions.csv"
    counting = CountingCaptioner(captioner)
    first = caption_media(media_dir / "clip_a.mp4", out, captioner=counting)
    assert counting.captioned == ["clip_a.mp4"] and first.captioned == [media_dir / "clip_a.mp4"]

    counting.calls.clear()
    second = caption_media(media_dir, out, captioner=counting, batch_size=2)
    assert counting.captioned == ["clip_b.mp4", "still.png"]
    assert second.already_captioned == [media_dir / "clip_a.mp4"]

    counting.calls.clear()
    third = caption_media(media_dir, out, captioner=counting)
    assert counting.calls == [] and len(third.already_captioned) == 3

    # An emptied caption is captioned again; the others are not.
    entries = read_captions(out)
    rows = out.read_text(encoding="utf-8").splitlines()
    rows[2] = "," + rows[2].rsplit(",", 1)[1]
    out.write_text("\n".join(rows) + "\n", encoding="utf-8")
    counting.calls.clear()
    caption_media(media_dir, out, captioner=counting)
    assert counting.captioned == [entries[1].media_path.name]

    counting.calls.clear()
    overridden = caption_media(media_dir, out, captioner=counting, override=True, batch_size=3)
    assert counting.captioned == ["clip_a.mp4", "clip_b.mp4", "still.png"] and len(overridden.captioned) == 3
    assert len(read_captions(out)) == 3  # replaced in place, not appended
    assert not captioner.closed  # a captioner passed in is left to its owner


def test_entries_for_other_media_are_kept(captioner, media_dir):
    out = media_dir / "captions.json"
    out.write_text(json.dumps([{"caption": "hand written", "media_path": "old/gone.mp4"}]), encoding="utf-8")
    caption_media(media_dir / "still.png", out, captioner=CountingCaptioner(captioner))
    entries = read_captions(out)
    assert [e.caption for e in entries][0] == "hand written" and len(entries) == 2


def test_a_crash_loses_at_most_one_batch(captioner, media_dir):
    out = media_dir / "captions.json"
    crashing = CountingCaptioner(captioner, fail_on_call=2)
    with pytest.raises(RuntimeError, match="simulated crash"):
        caption_media(media_dir, out, captioner=crashing, batch_size=1)
    assert [e.media_path.name for e in read_captions(out)] == ["clip_a.mp4"]
    assert [p.name for p in media_dir.iterdir() if p.name.startswith(".")] == []  # no temp file left behind
    resumed = CountingCaptioner(captioner)
    caption_media(media_dir, out, captioner=resumed)
    assert resumed.captioned == ["clip_b.mp4", "still.png"]


def test_bad_media_are_reported_per_file(captioner, media_dir):
    (media_dir / "garbage.mp4").write_bytes(b"this is not a video")
    good = (media_dir / "clip_a.mp4").read_bytes()
    (media_dir / "truncated.mp4").write_bytes(good[: len(good) // 3])
    _audio_only(media_dir / "voice.mp4")
    (media_dir / "broken.png").write_bytes(b"\x89PNG not really")
    progress = []
    report = caption_media(
        media_dir, captioner=CountingCaptioner(captioner), batch_size=2, progress=lambda *a: progress.append(a)
    )
    failed = {p.path.name: p.reason for p in report.failed}
    assert set(failed) == {"garbage.mp4", "truncated.mp4", "voice.mp4", "broken.png"}
    for name, reason in failed.items():
        assert name in reason
    assert "audio stream but no video stream" in failed["voice.mp4"]
    assert "not a readable image" in failed["broken.png"]
    assert [e.media_path.name for e in read_captions(media_dir / "captions.json")] == [
        "clip_a.mp4",
        "clip_b.mp4",
        "still.png",
    ]
    assert [(done, total, path.name) for done, total, path, _ in progress] == [
        (i + 1, 7, name)
        for i, name in enumerate(
            ["broken.png", "clip_a.mp4", "clip_b.mp4", "garbage.mp4", "still.png", "truncated.mp4", "voice.mp4"]
        )
    ]
    assert [caption is None for *_, caption in progress] == [True, False, False, True, False, True, True]


def test_a_folder_of_bad_media_loads_no_model(tmp_path, monkeypatch):
    (tmp_path / "bad.mp4").write_bytes(b"nope")
    monkeypatch.setattr(QwenCaptioner, "_load", lambda *a, **k: pytest.fail("model loaded for nothing"))
    report = caption_media(tmp_path, model="tiny")
    assert [p.path.name for p in report.failed] == ["bad.mp4"] and not (tmp_path / "captions.json").exists()


def test_unsupported_extension_is_named(tmp_path):
    with pytest.raises(DatasetError, match=r"extensions \.gif are not supported"):
        caption_media(tmp_path, model="tiny", extensions="mp4,gif")


# -------------------------------------------------------------------------------------------------------- CLI


def test_cli_end_to_end(tiny_qwen, media_dir, capsys):
    rc = caption_main([str(media_dir), "-m", "tiny", "--device", "cpu", "--max-new-tokens", str(TOKENS), "-r"])
    assert rc == 0
    rows = json.loads((media_dir / "captions.json").read_text(encoding="utf-8"))
    assert [r["media_path"] for r in rows] == ["clip_a.mp4", "clip_b.mp4", "nested/deep.mp4", "still.png"]
    assert all(r["caption"].strip() for r in rows)
    assert "4 captioned, 0 already captioned, 0 skipped, of 4 media files" in capsys.readouterr().out

    (media_dir / "garbage.mov").write_bytes(b"junk")
    rc = caption_main([str(media_dir), "-m", "tiny", "--device", "cpu", "--max-new-tokens", str(TOKENS), "-q"])
    out = capsys.readouterr().out
    assert rc == 1
    assert "0 captioned, 3 already captioned, 1 skipped" in out and "garbage.mov" in out


def test_cli_single_file_default_output_and_options(tiny_qwen, media_dir, capsys):
    rc = caption_main(
        [str(media_dir / "clip_b.mp4"), "-m", "tiny", "-d", "cpu", "--max-new-tokens", "3", "--no-clean-caption",
         "-i", "What happens?", "-f", "2", "--batch-size", "2", "-q"]
    )  # fmt: skip
    assert rc == 0
    entries = read_captions(media_dir / "clip_b.captions.json")
    assert [e.media_path for e in entries] == [media_dir / "clip_b.mp4"] and entries[0].caption.strip()


def test_cli_errors_name_the_input(tmp_path, capsys):
    assert caption_main([str(tmp_path / "missing"), "-m", "tiny"]) == 2
    assert "missing: no such file or folder" in capsys.readouterr().err
    assert caption_main([str(tmp_path), "-m", "tiny", "-q"]) == 2  # nothing to do is a failure, not a partial run
    assert "no media with extensions" in capsys.readouterr().err
    assert caption_main([str(tmp_path), "-c", "llava_next_7b"]) == 2
    assert "use qwen_25_vl or qwen_25_omni" in capsys.readouterr().err


def test_cli_caption_folder_that_cannot_be_created(media_dir, tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("keep me")
    monkeypatch.setattr(QwenCaptioner, "_load", lambda *a, **k: pytest.fail("model loaded before the output check"))
    assert caption_main([str(media_dir), "-m", "tiny", "-o", str(blocker / "captions.json"), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "Traceback" not in err
    assert f"error: caption file folder {blocker}: cannot be created: it is a file, not a folder." in err
    assert "-o/--output" in err and blocker.read_text() == "keep me"


def test_cli_read_only_folder_while_saving_keeps_the_caption_file(tiny_qwen, media_dir, monkeypatch, capsys):
    import errno

    out = media_dir / "captions.json"
    out.write_text(json.dumps([{"caption": "hand written", "media_path": "clip_a.mp4"}]), encoding="utf-8")
    before = out.read_bytes()
    real = Path.write_text

    def read_only(self: Path, *args, **kwargs):  # the lowest write: the temp file the caption file is renamed from
        if self.name.startswith(".captions.json."):
            raise OSError(errno.EROFS, "Read-only file system")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", read_only)
    rc = caption_main([str(media_dir), "-m", "tiny", "--device", "cpu", "--max-new-tokens", str(TOKENS), "-q"])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.count("error:") == 1 and "Traceback" not in err and "Errno" not in err
    assert f"error: caption file folder {media_dir}: it is on a read-only file system. Choose a folder" in err
    assert f"{out} keeps the captions saved before; run again to continue" in err
    assert out.read_bytes() == before
    assert [p.name for p in media_dir.iterdir() if p.name.startswith(".")] == []
