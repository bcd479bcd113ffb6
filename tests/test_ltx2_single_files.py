"""LTX-2 from the single files ComfyUI users keep: the all-in-one checkpoint (models/checkpoints), separate video and
audio VAE files (models/vae) and a Gemma 3 file (models/text_encoders), in Lightricks' / ComfyUI's tensor names.

The files are written from tiny-ltx2's components by the inverse of the loader's converters (diffusers' own
converters for the VAEs), then loaded back: every component must compute what the original computes."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from ltx_train_lib.errors import ModelLoadError
from ltx_train_lib.models.loader import load_components
from ltx_train_lib.models.ltx2 import comfy_keys, single_files
from ltx_train_lib.models.ltx2 import component_keys as ck
from ltx_train_lib.models.ltx2.tiny import (
    AUDIO_VAE_CONFIG,
    CONNECTORS_CONFIG,
    VAE_CONFIG,
    VOCODER_CONFIG,
)
from ltx_train_lib.models.registry import resolve_source


def _state(module) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous().clone() for k, v in module.state_dict().items()}


def _configs(gemma) -> str:
    """The diffusers configs our tiny files embed (real files use the shipped 19B / 12B configs)."""
    text = gemma.config.text_config.to_dict()
    text = {k: v for k, v in text.items() if k not in ("architectures", "transformers_version", "_name_or_path", "dtype")}
    return json.dumps({"vae": VAE_CONFIG, "audio_vae": AUDIO_VAE_CONFIG, "vocoder": VOCODER_CONFIG,
                       "connectors": CONNECTORS_CONFIG, "text_encoder": text})


@pytest.fixture(scope="module")
def tiny_parts():
    return load_components("tiny-ltx2")


@pytest.fixture(scope="module")
def comfy_files(tmp_path_factory, tiny_parts):
    """models/checkpoints/ltx2-tiny.safetensors (everything but Gemma), models/diffusion_models/<transformer only>,
    models/vae/<video VAE>, models/vae/<audio VAE + vocoder>, models/text_encoders/<Gemma 3 + spiece_model>."""
    root = tmp_path_factory.mktemp("comfy_models")
    for sub in ("checkpoints", "diffusion_models", "vae", "text_encoders"):
        (root / sub).mkdir()
    parts = tiny_parts
    meta = {"diffusers_configs": _configs(parts.text_encoder.gemma)}
    transformer = {ck.TRANSFORMER_PREFIX + comfy_keys.to_comfy_path(k): v for k, v in _state(parts.transformer).items()}
    connectors = ck.connectors_to_original(_state(parts.text_encoder.connectors))
    video_vae = ck.video_vae_to_original(_state(parts.vae.video))
    # Lightricks' files carry two statistics diffusers drops: they must be ignored, not refused.
    video_vae["vae.per_channel_statistics.mean-of-stds"] = torch.ones(8)
    audio_vae = ck.audio_vae_to_original(_state(parts.vae.audio))
    vocoder = ck.vocoder_to_original(_state(parts.vae.vocoder))
    files = {
        "checkpoint": root / "checkpoints" / "ltx2-tiny-dev.safetensors",
        "transformer_only": root / "diffusion_models" / "ltx2-tiny-transformer.safetensors",
        "video_vae": root / "vae" / "LTX2_video_vae_tiny.safetensors",
        "audio_vae": root / "vae" / "LTX2_audio_vae_tiny.safetensors",
        "gemma": root / "text_encoders" / "gemma_3_tiny_it.safetensors",
    }
    save_file({**transformer, **connectors, **video_vae, **audio_vae, **vocoder}, str(files["checkpoint"]), meta)
    # ComfyUI's LTXAV diffusion model holds the text connectors; the text projection stays in the checkpoint.
    in_diffusion_model = {k: v for k, v in connectors.items() if k.startswith(ck.TRANSFORMER_PREFIX)}
    save_file({**transformer, **in_diffusion_model}, str(files["transformer_only"]), meta)
    save_file(ck.select(video_vae, ck.VAE_PREFIX), str(files["video_vae"]), meta)  # models/vae: no prefix
    save_file({**audio_vae, **vocoder}, str(files["audio_vae"]), meta)
    gemma = parts.text_encoder.gemma.model.language_model
    tokenizer_model = _spiece_model()
    save_file({**ck.gemma_to_comfy(_state(gemma)),
               "vision_model.post_layernorm.weight": torch.ones(16),  # ComfyUI files carry the vision tower: ignored
               single_files.GEMMA_TOKENIZER_TENSOR: torch.frombuffer(bytearray(tokenizer_model), dtype=torch.uint8)},
              str(files["gemma"]), meta)
    files["spiece_bytes"] = tokenizer_model
    return files


def _spiece_model() -> bytes:
    """A small SentencePiece model trained on the spot (ComfyUI's Gemma files embed Gemma's as ``spiece_model``)."""
    import sentencepiece as spm

    from ltx_train_lib.models.ltx2.tiny import _WORDS

    out = io.BytesIO()
    sentences = [" ".join(_WORDS[i:i + 7]) for i in range(0, len(_WORDS), 3)] * 4
    spm.SentencePieceTrainer.train(sentence_iterator=iter(sentences), model_writer=out, vocab_size=400,
                                   model_type="bpe", byte_fallback=True, add_dummy_prefix=False,  # as Gemma's
                                   pad_id=0, eos_id=1, bos_id=2, unk_id=3, pad_piece="<pad>", eos_piece="<eos>",
                                   bos_piece="<bos>", unk_piece="<unk>", minloglevel=2, hard_vocab_limit=False)
    return out.getvalue()


# ------------------------------------------------------------------------------------------------ contents


def test_each_file_is_recognised_from_its_header(comfy_files) -> None:
    kinds = {name: set(single_files.inspect_file(path).components) for name, path in comfy_files.items()
             if isinstance(path, Path)}
    assert kinds == {
        "checkpoint": {"transformer", "connectors", "vae", "audio_vae", "vocoder"},
        "transformer_only": {"transformer", "connectors"},
        "video_vae": {"vae"},
        "audio_vae": {"audio_vae", "vocoder"},
        "gemma": {"gemma3"},
    }
    for name in ("checkpoint", "transformer_only"):
        assert single_files.detect_release(single_files.inspect_file(comfy_files[name])) == "2.0"
        assert resolve_source(str(comfy_files[name])).kind == "single_file"


def test_release_is_detected_from_keys() -> None:
    base = ["model.diffusion_model.patchify_proj.weight", "model.diffusion_model.audio_patchify_proj.weight",
            "model.diffusion_model.transformer_blocks.0.ff.net.0.proj.weight",
            "model.diffusion_model.transformer_blocks.0.ff.net.0.proj.bias"]
    gated = base + ["model.diffusion_model.transformer_blocks.0.attn1.to_gate_logits.weight"]
    v25 = gated[:3] + ["model.diffusion_model.transformer_blocks.0.attn1.to_gate_logits.weight"]

    def release(names):
        found = single_files.FileContents(Path("x"), dict.fromkeys(names, (1,)), {})
        found.components["transformer"] = "model.diffusion_model."
        return single_files.detect_release(found)

    assert (release(base), release(gated), release(v25)) == ("2.0", "2.3", "2.5")
    projection = single_files.FileContents(Path("x"), {"text_embedding_projection.video_aggregate_embed.weight": (1,)},
                                           {})
    assert single_files.detect_release(projection) == "2.3"


# ------------------------------------------------------------------------------------------------ loading


def _same_module(a, b) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def test_the_all_in_one_checkpoint_loads_every_component_equal_to_the_original(comfy_files, tiny_parts) -> None:
    loaded = load_components(str(comfy_files["checkpoint"]), components=("transformer", "vae", "text_encoder", "tokenizer"),
                             text_encoder_path=str(comfy_files["gemma"]))
    _same_module(loaded.transformer, tiny_parts.transformer)
    _same_module(loaded.vae.video, tiny_parts.vae.video)
    _same_module(loaded.vae.audio, tiny_parts.vae.audio)
    _same_module(loaded.vae.vocoder, tiny_parts.vae.vocoder)
    _same_module(loaded.text_encoder.connectors, tiny_parts.text_encoder.connectors)
    _same_module(loaded.text_encoder.gemma, tiny_parts.text_encoder.gemma.model.language_model)

    # Same outputs on the same inputs: a clip through the video VAE, a mel through the audio VAE and the vocoder,
    # prompts through Gemma and the connectors (with the tiny model's tokenizer for both).
    torch.manual_seed(0)
    clip = torch.rand(1, 3, 9, 64, 64) * 2 - 1
    mel = torch.randn(1, 2, 16, 8)
    with torch.no_grad():
        assert torch.equal(loaded.vae.video.encode(clip).latent_dist.mean, tiny_parts.vae.video.encode(clip).latent_dist.mean)
        assert torch.equal(loaded.vae.audio.encode(mel).latent_dist.mean, tiny_parts.vae.audio.encode(mel).latent_dist.mean)
        assert torch.equal(loaded.vae.vocoder(mel), tiny_parts.vae.vocoder(mel))
    from ltx_train_lib.models.ltx2.text import encode_prompts

    prompts = ["a dog walks on the grass", "red square"]
    ours = encode_prompts(tiny_parts.tokenizer, loaded.text_encoder, prompts)
    theirs = encode_prompts(tiny_parts.tokenizer, tiny_parts.text_encoder, prompts)
    for a, b in zip(ours, theirs, strict=True):
        for key in a:
            assert torch.equal(a[key], b[key]), key

    # The tokenizer ComfyUI's Gemma file carries (a SentencePiece model) is used: same ids as SentencePiece's own.
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_proto=comfy_files["spiece_bytes"])
    ids = loaded.tokenizer("a dog walks", add_special_tokens=True).input_ids
    assert ids == [2, *sp.encode("a dog walks")]


def test_separate_files_load_as_comfyui_keeps_them(comfy_files, tiny_parts) -> None:
    """Transformer in models/diffusion_models, video and audio VAE files in models/vae."""
    loaded = load_components(str(comfy_files["transformer_only"]), components=("transformer", "vae"),
                             vae_path=str(comfy_files["video_vae"]), audio_vae_path=str(comfy_files["audio_vae"]))
    _same_module(loaded.transformer, tiny_parts.transformer)
    _same_module(loaded.vae.video, tiny_parts.vae.video)
    _same_module(loaded.vae.vocoder, tiny_parts.vae.vocoder)
    # The checkpoint as the VAE source for a transformer-only file works too.
    loaded = load_components(str(comfy_files["transformer_only"]), components=("vae",),
                             vae_path=str(comfy_files["checkpoint"]))
    _same_module(loaded.vae.audio, tiny_parts.vae.audio)


def test_wrong_or_incomplete_files_are_refused_with_what_to_do(comfy_files, tmp_path: Path) -> None:
    # A VAE file given where the transformer is expected.
    from ltx_train_lib.models.ltx2.loading import _single_file_transformer

    with pytest.raises(ModelLoadError, match="not an LTX-2 transformer.*model.vae_path"):
        _single_file_transformer(comfy_files["video_vae"], None)
    # The audio VAE file as model_source: recognised as LTX-2's, refused as a transformer.
    with pytest.raises(ModelLoadError, match="holds an LTX-2 vocoder, an LTX-2 audio VAE, not an LTX-2 transformer"):
        load_components(str(comfy_files["audio_vae"]), components=("transformer",))
    # A video VAE file alone has no audio VAE: the message names the field and ComfyUI's file.
    with pytest.raises(ModelLoadError, match="audio VAE.*model.audio_vae_path.*models/vae"):
        load_components(str(comfy_files["transformer_only"]), components=("vae",),
                        vae_path=str(comfy_files["video_vae"]))
    # The Gemma file where a VAE is expected.
    with pytest.raises(ModelLoadError, match="model.vae_path: .* holds a Gemma 3 text encoder, not an LTX-2 video or audio VAE"):
        load_components(str(comfy_files["transformer_only"]), components=("vae",), vae_path=str(comfy_files["gemma"]),
                        audio_vae_path=str(comfy_files["audio_vae"]))
    # A diffusion-model file has the connectors but not the text projection: say which file has it.
    with pytest.raises(ModelLoadError, match="no text projection.*models/checkpoints"):
        load_components(str(comfy_files["transformer_only"]), components=("text_encoder",),
                        text_encoder_path=str(comfy_files["gemma"]))
    # A single checkpoint without text_encoder_path: say where Gemma goes.
    with pytest.raises(ModelLoadError, match="text_encoder_path.*models/text_encoders"):
        load_components(str(comfy_files["checkpoint"]), components=("text_encoder",))

    # A Gemma file without a tokenizer (no spiece_model, nothing beside it, not cached): what to put where.
    bare = tmp_path / "gemma_3_12B_it_fp8.safetensors"
    from safetensors import safe_open

    with safe_open(str(comfy_files["gemma"]), "pt") as fh:
        tensors = {k: fh.get_tensor(k) for k in fh.keys() if k != single_files.GEMMA_TOKENIZER_TENSOR}
        meta = fh.metadata()
    save_file(tensors, str(bare), meta)
    with pytest.raises(ModelLoadError, match="tokenizer.model.*next to the Gemma file.*model.tokenizer_path"):
        load_components(str(comfy_files["checkpoint"]), components=("tokenizer",), text_encoder_path=str(bare))
    # A tokenizer.model beside it is found.
    (tmp_path / "tokenizer.model").write_bytes(comfy_files["spiece_bytes"])
    tok = load_components(str(comfy_files["checkpoint"]), components=("tokenizer",), text_encoder_path=str(bare)).tokenizer
    assert tok("dog").input_ids[0] == 2

    # A stock Gemma 4 file (global layers without v_proj, a tokenizer.json tensor) is refused.
    gemma4 = tmp_path / "gemma_4_12b_it.safetensors"
    save_file({k: v for k, v in tensors.items() if k != "model.layers.1.self_attn.v_proj.weight"}
              | {"tokenizer_json": torch.zeros(4, dtype=torch.uint8)}, str(gemma4), meta)
    assert "gemma4" in single_files.inspect_file(gemma4).components
    with pytest.raises(ModelLoadError, match="Gemma 4.*gemma4-12b-ltx-v1"):
        load_components(str(comfy_files["checkpoint"]), components=("text_encoder",), text_encoder_path=str(gemma4))


def test_shipped_configs_match_the_19b_and_12b_architectures() -> None:
    """The shipped configs build (on the meta device) the real sizes, and their tensors pass the shape check the
    loader applies to a real file (names through our inverse + diffusers' converter round trip)."""
    import diffusers
    from diffusers.pipelines.ltx2 import LTX2TextConnectors
    from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder

    shapes = single_files._meta_state_shapes(diffusers.AutoencoderKLLTX2Video, single_files.shipped_config("vae_19b"))
    original = ck.video_vae_to_original(dict.fromkeys(shapes))
    assert set(ck.video_vae_to_diffusers(ck.select(original, ck.VAE_PREFIX))) == set(shapes)
    assert shapes["latents_mean"] == (128,)
    vocoder = single_files._meta_state_shapes(LTX2Vocoder, single_files.shipped_config("vocoder_19b"))
    assert set(ck.vocoder_to_diffusers(ck.select(ck.vocoder_to_original(dict.fromkeys(vocoder)), "vocoder."))) == set(vocoder)
    connectors = single_files._meta_state_shapes(LTX2TextConnectors, single_files.shipped_config("connectors_19b"))
    assert connectors["text_proj_in.weight"] == (3840, 3840 * 49)
    audio = single_files._meta_state_shapes(diffusers.AutoencoderKLLTX2Audio, single_files.shipped_config("audio_vae_19b"))
    assert audio["latents_mean"] == (128,)
    from transformers import Gemma3TextConfig, Gemma3TextModel

    with torch.device("meta"):
        gemma = Gemma3TextModel(Gemma3TextConfig(**single_files.shipped_config("gemma3_12b")))
    assert gemma.config.num_hidden_layers + 1 == single_files.shipped_config("connectors_19b")["text_proj_in_factor"]
    assert gemma.embed_tokens.weight.shape == (262208, 3840)


def test_memory_plan_of_a_checkpoint_reads_no_weights(comfy_files, monkeypatch) -> None:
    from safetensors import safe_open

    from ltx_train_lib.models.registry import get_family

    calls = []
    real_get = type(safe_open(str(comfy_files["checkpoint"]), "pt")).get_tensor
    monkeypatch.setattr(type(safe_open(str(comfy_files["checkpoint"]), "pt")), "get_tensor",
                        lambda self, k: calls.append(k) or real_get(self, k))
    profile = get_family("ltx2").memory_profile(resolve_source(str(comfy_files["checkpoint"])))
    assert "2 blocks" in profile.architecture and calls == []


def test_preprocessing_from_comfyuis_files_caches_what_tiny_ltx2_caches(comfy_files, tmp_path: Path) -> None:
    """Precompute with model_source = the models/checkpoints file, the VAEs from models/vae files and Gemma from
    models/text_encoders writes exactly the latents, audio latents and conditions tiny-ltx2's folder writes."""
    from ltx_train_lib.models.ltx2.tiny import tiny_ltx2_dir
    from ltx_train_lib.precompute import preprocess_dataset
    from ltx_train_lib.synthetic import make_scene_video

    clips = tmp_path / "clips"
    clips.mkdir()
    make_scene_video(clips / "c0.mp4", cuts=(), num_frames=30, fps=25.0, size=(96, 64), seed=0, audio=True)
    (clips / "captions.json").write_text(json.dumps([{"caption": "a tone scene", "media_path": "c0.mp4"}]))
    reference = preprocess_dataset(clips / "captions.json", "96x64x9", model_source="tiny-ltx2",
                                   output_dir=tmp_path / "ref")
    ours = preprocess_dataset(
        clips / "captions.json", "96x64x9", model_source=str(comfy_files["checkpoint"]),
        output_dir=tmp_path / "ours", vae_path=str(comfy_files["video_vae"]),
        audio_vae_path=str(comfy_files["audio_vae"]), text_encoder_path=str(comfy_files["gemma"]),
        tokenizer_path=str(tiny_ltx2_dir() / "tokenizer"),
    )
    assert reference.ok and ours.ok, ours.summary()
    for sub in ("latents", "audio_latents"):
        a = torch.load(tmp_path / "ref" / sub / "c0.pt", weights_only=True)
        b = torch.load(tmp_path / "ours" / sub / "c0.pt", weights_only=True)
        assert a.keys() == b.keys(), sub
        for key in a:
            if isinstance(a[key], torch.Tensor):
                assert torch.equal(a[key], b[key]), (sub, key)
    # Conditions: a real (non-tiny) source's Gemma runs in bf16 in preprocessing, so the reference is tiny-ltx2's
    # text stack in bf16 on the same caption.
    from ltx_train_lib.models.ltx2.text import encode_prompts

    tiny = load_components("tiny-ltx2", components=("text_encoder", "tokenizer"), text_encoder_dtype=torch.bfloat16)
    expected = encode_prompts(tiny.tokenizer, tiny.text_encoder, ["a tone scene"])[0]
    got = torch.load(tmp_path / "ours" / "conditions" / "c0.pt", weights_only=True)
    for key, value in expected.items():
        assert torch.equal(value, got[key]), key
