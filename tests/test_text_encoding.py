"""Text conditioning as ComfyUI encodes it: T5 with its attention mask (``comfyui``, the default) or without it
(``reference``), recorded in the cache and checked by the trainer before a model loads. Tiny random-weight T5; ComfyUI
itself is not importable here, so its input is built as its LTXV tokenizer builds it (comfy/text_encoders/lt.py:
the caption's tokens and </s>, padded with 0 to at least 128, never truncated; mask 1 up to and including </s>)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

from ltx_train_lib.config import config_from_dict
from ltx_train_lib.errors import ConfigError, DatasetError
from ltx_train_lib.precompute import MANIFEST_NAME, preprocess_dataset
from ltx_train_lib.precompute.model_io import encode_prompts
from ltx_train_lib.synthetic import make_scene_video
from tests.conftest import make_precomputed, tiny_config_dict

PROMPTS = ["a red square moves slowly to the left", "dog"]
COMFY_MIN_LENGTH = 128  # what ComfyUI's LTXV tokenizer pads to


@pytest.fixture(scope="module")
def t5(tiny_model_dir):
    from ltx_train_lib.models.loader import load_components

    comps = load_components("tiny", components=("text_encoder", "tokenizer"))
    return comps.tokenizer, comps.text_encoder.eval()


def _comfy_input(tokenizer, prompt: str) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Token ids and mask as ComfyUI's LTXV text encoder gives them to T5, and the count of unmasked tokens."""
    ids = tokenizer(prompt).input_ids[:-1] + [tokenizer.eos_token_id]  # the text's tokens, then one </s>
    n = len(ids)
    pad = max(COMFY_MIN_LENGTH - n, 0)
    return torch.tensor([ids + [0] * pad]), torch.tensor([[1] * n + [0] * pad]), n


def test_comfyui_encoding_is_t5_run_with_its_attention_mask(t5):
    tokenizer, encoder = t5
    conds = encode_prompts(tokenizer, encoder, PROMPTS, encoding="comfyui")
    batch = tokenizer(PROMPTS, padding="max_length", max_length=256, truncation=True, return_tensors="pt")
    with torch.no_grad():
        direct = encoder(batch.input_ids, attention_mask=batch.attention_mask)[0]
    for i, prompt in enumerate(PROMPTS):
        cond = conds[i]
        assert cond["prompt_embeds"].shape == (256, 32) and cond["prompt_embeds"].dtype == torch.bfloat16
        assert torch.equal(cond["prompt_embeds"], direct[i].to(torch.bfloat16))
        # What ComfyUI feeds the model: its shorter padding does not change a single caption token's embedding, and
        # its mask covers the same tokens (the caption's and </s>).
        ids, mask, n = _comfy_input(tokenizer, prompt)
        with torch.no_grad():
            comfy = encoder(ids, attention_mask=mask)[0][0]
        assert torch.allclose(cond["prompt_embeds"][:n].float(), comfy[:n], atol=8e-3, rtol=0), prompt  # bf16 rounding
        assert cond["prompt_attention_mask"].tolist() == [True] * n + [False] * (256 - n)
        # ComfyUI does not zero the padded positions for LTXV (only for Cosmos); neither does the cache.
        assert cond["prompt_embeds"][n:].float().abs().sum() > 0


def test_reference_encoding_is_t5_without_the_mask_and_differs(t5):
    tokenizer, encoder = t5
    ref = encode_prompts(tokenizer, encoder, PROMPTS, encoding="reference")
    masked = encode_prompts(tokenizer, encoder, PROMPTS, encoding="comfyui")
    batch = tokenizer(PROMPTS, padding="max_length", max_length=256, truncation=True, return_tensors="pt")
    with torch.no_grad():
        direct = encoder(batch.input_ids)[0]
    for i in range(len(PROMPTS)):
        n = int(batch.attention_mask[i].sum())
        assert torch.equal(ref[i]["prompt_embeds"], direct[i].to(torch.bfloat16))
        assert torch.equal(ref[i]["prompt_attention_mask"], masked[i]["prompt_attention_mask"])  # same mask stored
        # The padding took part in the unmasked run: the caption's own tokens come out different.
        assert (ref[i]["prompt_embeds"][:n].float() - masked[i]["prompt_embeds"][:n].float()).abs().max() > 0.1
    # Batching never changes a masked prompt's embedding (its tokens do not see the other prompts' padding).
    alone = encode_prompts(tokenizer, encoder, PROMPTS[1:], encoding="comfyui")[0]
    assert torch.allclose(alone["prompt_embeds"][:2].float(), masked[1]["prompt_embeds"][:2].float(), atol=8e-3, rtol=0)


def test_a_caption_longer_than_256_tokens_is_named(t5, caplog):
    tokenizer, encoder = t5
    long_caption = " ".join(["dog"] * 300)
    with caplog.at_level(logging.WARNING):
        (cond,) = encode_prompts(tokenizer, encoder, [long_caption])
    assert bool(cond["prompt_attention_mask"].all())
    assert "301 tokens" in caplog.text and "ComfyUI would encode all of them" in caplog.text
    with pytest.raises(ValueError, match="unknown text encoding 'masked'"):
        encode_prompts(tokenizer, encoder, ["x"], encoding="masked")


# ------------------------------------------------------------------------------------------------- in the cache


def _dataset(folder: Path) -> Path:
    for i, name in enumerate(("one.mp4", "two.mp4")):
        make_scene_video(folder / name, cuts=(), num_frames=10, fps=24, size=(64, 64), seed=i)
    (folder / "captions.json").write_text(
        json.dumps([{"caption": "a red square", "media_path": "one.mp4"}, {"caption": "blue stripes", "media_path": "two.mp4"}])
    )
    return folder


def run(folder: Path, **kw):
    return preprocess_dataset(folder, "64x64x9", model_source="tiny", device="cpu", **kw)


def test_switching_the_text_encoding_recomputes_the_conditions_only(tmp_path, t5):
    root = _dataset(tmp_path)
    out = root / ".precomputed"
    first = run(root)
    assert sorted(first.conditions_computed) == ["one.mp4", "two.mp4"]
    assert json.loads((out / MANIFEST_NAME).read_text())["text_encoding"] == "comfyui"
    masked = torch.load(out / "conditions/one.pt", weights_only=True)["prompt_embeds"]
    latents = torch.load(out / "latents/one.pt", weights_only=True)["latents"]

    switched = run(root, text_encoding="reference")
    assert sorted(switched.conditions_computed) == ["one.mp4", "two.mp4"] and switched.latents_computed == []
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert manifest["text_encoding"] == manifest["settings"]["text_encoding"] == "reference"
    unmasked = torch.load(out / "conditions/one.pt", weights_only=True)["prompt_embeds"]
    want = encode_prompts(*t5, ["a red square"], encoding="reference")[0]["prompt_embeds"]
    assert torch.equal(unmasked, want) and not torch.equal(unmasked, masked)
    assert torch.equal(torch.load(out / "latents/one.pt", weights_only=True)["latents"], latents)

    # Back again: both caches are kept, nothing is recomputed.
    back = run(root)
    assert back.processed == [] and back.conditions_computed == back.latents_computed == []
    assert torch.equal(torch.load(out / "conditions/one.pt", weights_only=True)["prompt_embeds"], masked)


def _strategy(root: Path, text_encoding: str | None):
    from ltx_train_lib.models.registry import family_for_source
    from ltx_train_lib.training.strategy import build_strategy

    cfg = config_from_dict(tiny_config_dict(root, root / "out"))
    if text_encoding is not None:
        cfg.data.text_encoding = text_encoding
    data = cfg.data if text_encoding is not None else None
    return build_strategy(cfg.conditioning, cfg.flow_matching, family_for_source("tiny"), data=data)


def test_training_refuses_conditions_of_another_encoding_before_a_model_loads(tmp_path, monkeypatch):
    import ltx_train_lib.models.loader as loader

    root = _dataset(tmp_path)
    run(root)  # comfyui, the default of both sides
    monkeypatch.setattr(loader, "load_components", lambda *a, **k: pytest.fail("a model was loaded"))
    assert len(_strategy(root, "comfyui").dataset(str(root))) == 2
    with pytest.raises(DatasetError) as refused:
        _strategy(root, "reference").dataset(str(root))
    msg = str(refused.value)
    assert "'comfyui'" in msg and "'reference'" in msg and "--text-encoding reference" in msg
    assert "data.text_encoding: comfyui" in msg
    assert _strategy(root, None).dataset(str(root)).text_encoding == "comfyui"  # no data section: not checked
    # The default of the training config is the default of preprocessing.
    assert config_from_dict(tiny_config_dict(root, root / "out")).data.text_encoding == "comfyui"
    with pytest.raises(ConfigError, match="data.text_encoding"):
        config_from_dict(tiny_config_dict(root, root / "out", data__text_encoding="masked"))


def test_a_cache_without_manifest_is_taken_as_reference_with_a_warning(tmp_path, caplog):
    root = make_precomputed(tmp_path / "ds", [(2, 2, 2)] * 2)  # as the reference trainer writes it
    with caplog.at_level(logging.WARNING):
        ds = _strategy(root, "comfyui").dataset(str(root))
    assert len(ds) == 2 and ds.text_encoding == "reference"
    assert "no readable preprocessing manifest" in caplog.text and "--text-encoding comfyui" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert _strategy(root, "reference").dataset(str(root)).text_encoding == "reference"
    assert "--text-encoding" not in caplog.text


def test_cli_flag_and_its_errors(tmp_path, capsys):
    from ltx_train_lib.cli.preprocess import build_parser, main

    root = _dataset(tmp_path)
    action = {a.dest: a for a in build_parser()._actions}["text_encoding"]
    assert action.option_strings == ["--text-encoding"] and action.choices == ["comfyui", "reference"]
    assert action.default == "comfyui"
    assert main([str(root), "--resolution-buckets", "64x64x9", "--model-source", "tiny", "--text-encoding", "masked"]) == 2
    assert "--text-encoding" in capsys.readouterr().err
    assert main([str(root), "--resolution-buckets", "64x64x9", "--model-source", "tiny", "--text-encoding", "reference"]) == 0
    assert json.loads((root / ".precomputed" / MANIFEST_NAME).read_text())["text_encoding"] == "reference"
