"""Validation sampling on the tiny model: our loop equals diffusers' LTX pipelines, the image and the LoRA reach the
video, compiled blocks are not used while sampling, the VAE goes back to the CPU."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from ltx_train_lib.config import ValidationConfig
from ltx_train_lib.models.registry import get_family
from ltx_train_lib.training.validation import ValidationConditions, encode_conditions, generate_validation_videos

PROMPT = "a red square moving slowly"
NEGATIVE = "blurry dark noise"


@pytest.fixture
def components(tiny_model_dir: Path):
    from ltx_train_lib.models.loader import load_components

    comps = load_components("tiny", ("transformer", "vae", "text_encoder", "tokenizer", "scheduler"))
    comps.transformer.eval()
    return comps


def _conditions(components, cfg: ValidationConfig) -> ValidationConditions:
    return encode_conditions(get_family("ltxv"), components.tokenizer, components.text_encoder, cfg)


def _sampler(components):
    return get_family("ltxv").validation_sampler(components, components.transformer, "cpu")


def _image(seed: int, size=(64, 64)):
    from PIL import Image

    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))


def _diffusers_kwargs(cond: ValidationConditions, cfg: ValidationConfig, seed: int, fps: float) -> dict:
    width, height, frames = cfg.video_dims
    return dict(
        prompt_embeds=cond.prompts[0]["prompt_embeds"][None].float(),
        prompt_attention_mask=cond.prompts[0]["prompt_attention_mask"][None],
        negative_prompt_embeds=cond.negative["prompt_embeds"][None].float(),
        negative_prompt_attention_mask=cond.negative["prompt_attention_mask"][None],
        width=width, height=height, num_frames=frames, frame_rate=fps,
        num_inference_steps=cfg.inference_steps, guidance_scale=cfg.guidance_scale,
        generator=torch.Generator().manual_seed(seed), output_type="latent",
    )


def _parts(components) -> dict:
    return dict(transformer=components.transformer, vae=components.vae, text_encoder=components.text_encoder,
                tokenizer=components.tokenizer, scheduler=copy.deepcopy(components.scheduler))


@pytest.mark.parametrize(("guidance", "steps"), [(3.0, 3), (1.0, 2)])
def test_text_to_video_latents_equal_diffusers_ltx_pipeline(components, guidance: float, steps: int) -> None:
    from diffusers import LTXPipeline

    cfg = ValidationConfig(prompts=[PROMPT], negative_prompt=NEGATIVE, video_dims=(64, 64, 17), inference_steps=steps,
                           guidance_scale=guidance)
    cond = _conditions(components, cfg)
    ours = _sampler(components).denoise(cfg, cond.prompts[0], cond.negative, torch.Generator().manual_seed(5), frame_rate=24.0)
    pipe = LTXPipeline(**_parts(components))
    pipe.set_progress_bar_config(disable=True)
    theirs = pipe(**_diffusers_kwargs(cond, cfg, 5, 24.0)).frames
    assert ours.shape == theirs.shape == (1, 3 * 2 * 2, 8)
    assert (ours - theirs).abs().max().item() < 1e-5
    # and the frame rate reaches RoPE: another rate, another sample
    other = _sampler(components).denoise(cfg, cond.prompts[0], cond.negative, torch.Generator().manual_seed(5), frame_rate=12.0)
    assert (other - ours).abs().max().item() > 1e-3


def test_image_to_video_latents_equal_diffusers_image_to_video_pipeline(components) -> None:
    from diffusers import LTXImageToVideoPipeline

    from ltx_train_lib.media import frames_to_pixels
    from ltx_train_lib.models.ltxv.latents import encode_tokens

    cfg = ValidationConfig(prompts=[PROMPT], negative_prompt=NEGATIVE, video_dims=(64, 64, 17), inference_steps=3)
    cond = _conditions(components, cfg)
    image = _image(1)
    ours = _sampler(components).denoise(cfg, cond.prompts[0], cond.negative, torch.Generator().manual_seed(5),
                                        frame_rate=24.0, image=image)
    pipe = LTXImageToVideoPipeline(**_parts(components))
    pipe.set_progress_bar_config(disable=True)
    theirs = pipe(image=image, **_diffusers_kwargs(cond, cfg, 5, 24.0)).frames
    assert (ours - theirs).abs().max().item() < 1e-5
    # The first latent frame is the image's latent (drawn first from the same generator), never denoised.
    first, _ = encode_tokens(components.vae, frames_to_pixels(np.array(image)[None])[None], [torch.Generator().manual_seed(5)],
                             dtype=torch.float32)
    assert torch.equal(ours[:, :4], first)


def test_one_inference_step_gives_a_finite_sample(components) -> None:
    cfg = ValidationConfig(prompts=[PROMPT], video_dims=(64, 64, 9), inference_steps=1)
    cond = _conditions(components, cfg)
    video = _sampler(components).generate(cfg, cond.prompts[0], cond.negative, torch.Generator().manual_seed(0), frame_rate=24.0)
    assert video.shape == (9, 64, 64, 3) and video.dtype == np.uint8
    latents = _sampler(components).denoise(cfg, cond.prompts[0], cond.negative, torch.Generator().manual_seed(0), frame_rate=24.0)
    assert torch.isfinite(latents).all()


def test_image_to_video_follows_the_image_and_the_lora(components) -> None:
    from peft import LoraConfig

    cfg = ValidationConfig(prompts=[PROMPT], negative_prompt=NEGATIVE, video_dims=(64, 64, 9), inference_steps=2)
    cond = _conditions(components, cfg)

    def video(image) -> np.ndarray:
        sample = _sampler(components).generate(cfg, cond.prompts[0], cond.negative, torch.Generator().manual_seed(3),
                                               frame_rate=24.0, image=image)
        return sample.astype(np.int32)

    base, other_image = video(_image(1)), video(_image(2))
    assert np.abs(base - other_image).mean() > 1, "the image did not change the video"
    assert np.array_equal(video(_image(1)), base)  # and the same image, the same video

    components.transformer.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    assert np.array_equal(video(_image(1)), base), "a LoRA with zero lora_B must not change the video"
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in components.transformer.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g))
    assert np.abs(video(_image(1)) - base).mean() > 1, "the trained LoRA did not change the video"


def test_validation_runs_the_eager_blocks_of_a_compiled_transformer(components, tmp_path: Path) -> None:
    from torch._dynamo.eval_frame import OptimizedModule

    from ltx_train_lib.models.family import ForwardInputs
    from ltx_train_lib.training.model_setup import compile_blocks

    family = get_family("ltxv")
    calls = {"compiled": 0}

    def counting_backend(gm, example_inputs):
        def run(*args):
            calls["compiled"] += 1
            return gm.forward(*args)

        return run

    torch._dynamo.reset()
    transformer = components.transformer
    compile_blocks(family, transformer, backend=counting_backend)
    blocks = list(family.blocks(transformer))
    assert all(isinstance(b, OptimizedModule) for b in blocks)

    f, h, w = 2, 2, 2
    inputs = ForwardInputs(tokens=torch.randn(1, f * h * w, 8), timesteps=torch.full((1, f * h * w), 500.0),
                           prompt_embeds=torch.randn(1, 256, 32), prompt_attention_mask=torch.ones(1, 256, dtype=torch.bool),
                           latent_shape=(f, h, w), fps=24.0)
    transformer.train()
    family.predict(transformer, inputs, device="cpu", dtype=torch.float32).sum()  # a training forward: compiled
    assert calls["compiled"] > 0

    seen: list[bool] = []
    real_predict = type(family).predict

    def spying_predict(self, model, inputs, *, device, dtype):
        seen.append(any(isinstance(b, OptimizedModule) for b in self.blocks(model)))
        return real_predict(self, model, inputs, device=device, dtype=dtype)

    before = calls["compiled"]
    transformer.eval()
    cfg = ValidationConfig(prompts=[PROMPT], video_dims=(64, 64, 9), inference_steps=2)
    mp = pytest.MonkeyPatch()
    mp.setattr(type(family), "predict", spying_predict)
    try:
        paths = generate_validation_videos(components, transformer, cfg, 0, tmp_path, "cpu", conditions=_conditions(components, cfg))
    finally:
        mp.undo()
        torch._dynamo.reset()
    assert len(paths) == 1 and paths[0].is_file()
    assert seen and not any(seen), "validation ran through compiled blocks"
    assert calls["compiled"] == before
    assert list(family.blocks(transformer)) == blocks  # the compiled wrappers are back for training


class _DeviceLog:
    """Records the devices a module is sent to (the CPU machine cannot show a GPU round trip)."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.moves: list[str] = []
        real_to = module.to

        def to(*args, **kwargs):
            self.moves.append(str(args[0]) if args else str(kwargs.get("device")))
            return real_to(*args, **kwargs)

        module.to = to


def test_the_vae_visits_the_device_only_to_encode_and_decode_and_always_returns(components, tmp_path: Path, monkeypatch) -> None:
    cfg = ValidationConfig(prompts=[PROMPT], images=None, video_dims=(64, 64, 9), inference_steps=2)
    cond = _conditions(components, cfg)
    log = _DeviceLog(components.vae)
    sampler = _sampler(components)
    sampler.generate(cfg, cond.prompts[0], cond.negative, torch.Generator().manual_seed(0), frame_rate=24.0, image=_image(0))
    assert log.moves == ["cpu", "cpu", "cpu", "cpu"]  # (device, back) for the image, (device, back) for decoding

    family = type(get_family("ltxv"))

    def failing_decode(self, *args, **kwargs):
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(family, "decode_latents", failing_decode)
    log.moves.clear()
    with pytest.raises(RuntimeError, match="out of memory"):
        generate_validation_videos(components, components.transformer, cfg, 0, tmp_path, "cpu", conditions=cond)
    assert log.moves and log.moves[-1] == "cpu"


def test_text_encoder_is_not_needed_with_precomputed_conditions(components, tmp_path: Path) -> None:
    cfg = ValidationConfig(prompts=[PROMPT, "a dog"], video_dims=(64, 32, 9), inference_steps=2, frame_rate=12)
    cond = _conditions(components, cfg)
    components.text_encoder = components.tokenizer = None
    paths = generate_validation_videos(components, components.transformer, cfg, 4, tmp_path, "cpu", conditions=cond)
    from ltx_train_lib.media import read_video_frames

    frames, fps = read_video_frames(paths[1])
    assert frames.shape == (9, 32, 64, 3) and round(fps) == 12
    with pytest.raises(ValueError, match="needs conditions="):
        generate_validation_videos(components, components.transformer, cfg, 4, tmp_path, "cpu")


def test_trainer_encodes_prompts_once_frees_the_encoder_and_samples_at_the_dataset_fps(tmp_path: Path, tiny_model_dir, monkeypatch) -> None:
    import gc
    import weakref

    import yaml

    from ltx_train_lib.config import config_from_dict
    from ltx_train_lib.media import read_video_frames
    from ltx_train_lib.training.trainer import Trainer
    from tests.conftest import make_precomputed, tiny_config_dict

    family = type(get_family("ltxv"))
    encoded: list[tuple[int, torch.dtype]] = []
    encoders: list[weakref.ref] = []
    forwards: list[tuple[bool, float, bool]] = []  # (training?, fps, a text encoder alive?)
    real_encode, real_predict = family.encode_prompts, family.predict

    def spying_encode(self, tokenizer, text_encoder, prompts, **kwargs):
        encoded.append((len(prompts), next(text_encoder.parameters()).dtype))
        encoders.append(weakref.ref(text_encoder))
        return real_encode(self, tokenizer, text_encoder, prompts, **kwargs)

    def spying_predict(self, model, inputs, *, device, dtype):
        forwards.append((torch.is_grad_enabled(), inputs.fps, any(r() is not None for r in encoders)))
        return real_predict(self, model, inputs, device=device, dtype=dtype)

    monkeypatch.setattr(family, "encode_prompts", spying_encode)
    monkeypatch.setattr(family, "predict", spying_predict)
    root = make_precomputed(tmp_path / "ds", [(2, 2, 2)] * 2, fps=15.0)
    out = tmp_path / "out"
    cfg = tiny_config_dict(root, out, optimization__steps=2, optimization__batch_size=1, checkpoints__interval=None,
                           acceleration__mixed_precision_mode="bf16",
                           validation={"prompts": ["a red square"], "interval": 1, "video_dims": [64, 64, 9],
                                       "inference_steps": 2, "skip_initial_validation": True})
    trainer = Trainer(config_from_dict(cfg))
    assert trainer.train().status == "done"
    gc.collect()

    assert encoded == [(2, torch.bfloat16)]  # once, prompt + negative, in the training dtype
    assert trainer.components.text_encoder is None and trainer.components.vae.dtype == torch.bfloat16
    training = [f for f in forwards if f[0]]
    sampling = [f for f in forwards if not f[0]]
    assert len(training) == 2 and len(sampling) == 2 * 2  # validations at steps 1 and 2, two denoising steps each
    assert {fps for _, fps, _ in forwards} == {15.0}  # RoPE at the dataset's rate, in training and in validation
    assert not any(alive for _, _, alive in forwards), "the text encoder was still alive during training or sampling"
    saved = yaml.safe_load((out / "training_config.yaml").read_text())
    assert saved["validation"]["frame_rate"] == 15.0
    _, fps = read_video_frames(out / "validation_samples" / "step_000002_p0_v0.mp4")
    assert round(fps) == 15


@pytest.mark.parametrize("causal", [False, True])
def test_the_sampler_feeds_the_family_positions_and_the_causal_flag(components, monkeypatch, causal: bool) -> None:
    """Every transformer call gets explicit positions from family.token_positions, asked for the causal offset
    exactly when the model has it (components.extras), so validation sees the positions training and ComfyUI use."""
    from ltx_train_lib.models.family import ForwardInputs

    family = type(get_family("ltxv"))
    real_positions, real_predict = family.token_positions, family.predict
    asked: list[dict] = []
    given: list[torch.Tensor] = []
    fed: list[ForwardInputs] = []

    def spying_positions(self, batch_size, latent_shape, fps, **kwargs):
        asked.append(kwargs)
        positions = real_positions(self, batch_size, latent_shape, fps)
        if kwargs.get("causal"):
            positions = positions.clone()
            positions[:, 0] += 1.0  # a stand-in offset: whatever the family returns must be what the model gets
        given.append(positions)
        return positions

    def spying_predict(self, model, inputs, *, device, dtype):
        fed.append(inputs)
        return real_predict(self, model, inputs, device=device, dtype=dtype)

    monkeypatch.setattr(family, "token_positions", spying_positions)
    monkeypatch.setattr(family, "predict", spying_predict)
    components.extras["causal_temporal_positioning"] = causal
    cfg = ValidationConfig(prompts=[PROMPT], video_dims=(64, 64, 9), inference_steps=2)
    cond = _conditions(components, cfg)
    _sampler(components).denoise(cfg, cond.prompts[0], cond.negative, torch.Generator().manual_seed(0), frame_rate=20.0,
                                 image=_image(0))
    assert asked == [{"causal": causal}]
    assert len(fed) == 2 and all(torch.equal(i.positions, given[0]) for i in fed)
    assert all(i.fps == 20.0 for i in fed)
    assert all(i.causal_temporal_positioning is causal for i in fed)


def test_prompts_are_encoded_with_the_configured_text_encoding_where_the_family_takes_one(tiny_model_dir, caplog) -> None:
    from ltx_train_lib.config import ModelConfig
    from ltx_train_lib.training.validation import encode_validation_prompts

    family = get_family("ltxv")
    seen: list[dict] = []

    class WithEncoding:
        def encode_prompts(self, tokenizer, text_encoder, prompts, *, encoding="comfyui"):
            seen.append({"n": len(prompts), "encoding": encoding})
            return family.encode_prompts(tokenizer, text_encoder, prompts, encoding=encoding)

        def load_components(self, *args, **kwargs):
            return family.load_components(*args, **kwargs)

    cfg = ValidationConfig(prompts=["a", "b"], negative_prompt="c")
    with caplog.at_level("WARNING"):
        cond = encode_validation_prompts(WithEncoding(), ModelConfig(model_source="tiny"), cfg, device=torch.device("cpu"),
                                         dtype=torch.float32, load_in_8bit=True, encoding="reference")
    assert seen == [{"n": 3, "encoding": "reference"}]
    assert "load_text_encoder_in_8bit needs a CUDA GPU" in caplog.text  # 8-bit falls back on a CPU machine
    assert len(cond.prompts) == 2 and cond.negative["prompt_embeds"].shape == (256, 32)
    # the real family with the same encoding gives the same conditions
    plain = encode_validation_prompts(family, ModelConfig(model_source="tiny"), cfg, device=torch.device("cpu"),
                                      dtype=torch.float32, encoding="reference")
    assert torch.equal(plain.prompts[1]["prompt_embeds"], cond.prompts[1]["prompt_embeds"])


def test_dataset_frame_rate_is_the_most_common_video_rate(tmp_path: Path, caplog) -> None:
    from ltx_train_lib.data import PrecomputedDataset
    from ltx_train_lib.training.validation import dataset_frame_rate, resolved_frame_rate
    from tests.conftest import make_precomputed

    root = make_precomputed(tmp_path / "ds", [(2, 2, 2)] * 3 + [(1, 2, 2)], fps=30.0)
    ds = PrecomputedDataset(root)
    first = ds.samples[0].latents_path
    lat = torch.load(first, weights_only=True)
    torch.save({**lat, "fps": 24.0}, first)
    image = next(s.latents_path for s in ds.samples if s.shape[0] == 1)
    torch.save({**torch.load(image, weights_only=True), "fps": 24.0}, image)  # images do not vote
    with caplog.at_level("WARNING"):
        assert dataset_frame_rate(PrecomputedDataset(root)) == 30.0
    assert "mixes frame rates" in caplog.text and "24 fps x1" in caplog.text
    assert resolved_frame_rate(ValidationConfig()) == 25.0 and resolved_frame_rate(ValidationConfig(frame_rate=12)) == 12.0
