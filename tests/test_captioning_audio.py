"""Captions that hear: the tiny random-weight Qwen2.5-Omni, loaded like the real one, gets each clip's sound."""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never download anything

import numpy as np
import pytest

from ltx_train_lib import media, synthetic
from ltx_train_lib.captioning import (
    DEFAULT_AUDIO_INSTRUCTION,
    DEFAULT_INSTRUCTION,
    OmniCaptioner,
    QwenCaptioner,
    caption_media,
    captioner_hears,
    make_captioner,
    read_media,
    resolve_captioner_model,
)
from ltx_train_lib.captions_io import read_captions
from ltx_train_lib.cli.caption import main as caption_main
from ltx_train_lib.models.tiny_qwen import MARKER_FILE

TOKENS = 5


@pytest.fixture(scope="module")
def tiny_omni(tmp_path_factory) -> Path:
    cache = tmp_path_factory.mktemp("omni_cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LTX_TRAIN_CACHE", str(cache))
        yield Path(resolve_captioner_model("tiny-omni"))


@pytest.fixture(scope="module")
def omni(tiny_omni):
    with make_captioner(str(tiny_omni), device="cpu", max_new_tokens=TOKENS) as c:
        yield c


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    """Three clips with the same frames: a 300 Hz tone, a 1200 Hz tone, and no sound."""
    d = tmp_path_factory.mktemp("hear")
    frames = np.stack(list(synthetic.scene_frames(cuts=(), num_frames=24, size=(96, 64))))
    t = np.arange(16000) / 16000
    out = {}
    for name, hz in (("low", 300), ("high", 1200)):
        wave = (0.4 * np.sin(2 * np.pi * hz * t)).astype(np.float32)
        out[name] = media.write_video(d / f"{name}.mp4", frames, 24, audio=wave, audio_sample_rate=16000)
    out["silent"] = media.write_video(d / "silent.mp4", frames, 24)
    return out


def test_which_captioners_hear(tiny_omni: Path, tmp_path: Path) -> None:
    assert captioner_hears("tiny-omni") and captioner_hears(tiny_omni)
    assert captioner_hears("Qwen/Qwen2.5-Omni-7B") and captioner_hears("Qwen/Qwen2.5-Omni-3B")
    assert not captioner_hears("tiny") and not captioner_hears("Qwen/Qwen2.5-VL-7B-Instruct")
    vl = tmp_path / "vl"
    vl.mkdir()
    (vl / "config.json").write_text(json.dumps({"model_type": "qwen2_5_vl"}))
    assert not captioner_hears(vl)
    assert "RANDOM WEIGHTS" in (tiny_omni / MARKER_FILE).read_text()
    assert (tiny_omni / "spk_dict.pt").is_file()  # loads through the real model's from_pretrained


def test_sound_is_read_only_for_a_captioner_that_hears(clips: dict[str, Path]) -> None:
    heard = read_media(clips["low"], audio_sample_rate=16000)
    assert heard.audio is not None and heard.audio.shape == (16000,) and heard.audio.dtype == np.float32
    assert read_media(clips["low"]).audio is None  # the Qwen2.5-VL path reads no sound
    assert read_media(clips["silent"], audio_sample_rate=16000).audio is None


def test_the_sound_reaches_the_model(omni: OmniCaptioner, clips: dict[str, Path]) -> None:
    import torch

    assert isinstance(omni, OmniCaptioner) and omni.hears and omni.audio_sample_rate == 16000
    audio_token = omni._processor.tokenizer.audio_token_id
    logits, prompts = {}, {}
    for name, path in clips.items():
        inputs, has_audio = omni.prepare_inputs(omni.read_media(path))
        assert has_audio == (name != "silent")
        count = int((inputs["input_ids"] == audio_token).sum())
        if has_audio:
            assert 20 <= count <= 30  # Qwen2.5-Omni hears 25 audio tokens per second; the clip lasts 1 s
            assert "input_features" in inputs
        else:
            assert count == 0 and "input_features" not in inputs
        prompts[name] = omni._processor.batch_decode(inputs["input_ids"], skip_special_tokens=True)[0]
        with torch.inference_mode():
            out = omni.model.thinker(**inputs, use_audio_in_video=has_audio)
        logits[name] = out.logits[0, -1]
    assert DEFAULT_AUDIO_INSTRUCTION in prompts["low"] and DEFAULT_INSTRUCTION in prompts["silent"]
    # Same frames, same prompt: only the sound differs, and the model's next-token scores follow it.
    assert not torch.allclose(logits["low"], logits["high"])


def test_caption_media_with_a_captioner_that_hears(tiny_omni: Path, clips: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "captions.json"
    files = [clips["low"], clips["silent"], synthetic.make_image(tmp_path / "still.png")]
    report = caption_media(files, out, model="tiny-omni", device="cpu", max_new_tokens=TOKENS)
    assert report.ok and sorted(p.name for p in report.captioned) == ["low.mp4", "silent.mp4", "still.png"]
    entries = read_captions(out)
    assert len(entries) == 3 and all(e.caption.strip() for e in entries)


def test_caption_cli_captioner_type_omni(tiny_omni: Path, clips: dict[str, Path], tmp_path: Path, capsys) -> None:
    out = tmp_path / "c.json"
    args = [str(clips["high"]), "-o", str(out), "--max-new-tokens", str(TOKENS), "-q", "-d", "cpu"]
    assert caption_main([*args, "-c", "qwen_25_omni", "-m", "tiny-omni"]) == 0
    assert len(read_captions(out)) == 1
    assert caption_main([*args, "-c", "qwen_25_omni", "-m", "tiny"]) == 2
    assert "needs a Qwen2.5-Omni model" in capsys.readouterr().err
    assert caption_main([*args, "-c", "whisper"]) == 2
    assert "use qwen_25_vl or qwen_25_omni" in capsys.readouterr().err


def test_video_only_captioner_stays_the_default() -> None:
    import inspect

    assert inspect.signature(caption_media).parameters["model"].default == "Qwen/Qwen2.5-VL-7B-Instruct"
    assert not QwenCaptioner.hears
