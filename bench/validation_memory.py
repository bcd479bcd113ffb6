#!/usr/bin/env python
"""Peak GPU memory of one validation against the training step's peak, printed side by side.

Builds the real LTX-Video architecture with random weights (``build_random_transformer``, no download), adds a LoRA
and an AdamW optimizer as the trainer does, runs training steps on random latents of a bucket and measures the step's
peak; then runs one validation video the trainer's way (``generate_validation_videos``: precomputed prompt
embeddings, no text encoder, CFG batch of 2, eager blocks, the VAE on the GPU only to decode) with the model and the
optimizer state still resident, and measures its peak, for the denoising loop alone and with the VAE decode. The VAE
is the 0.9.5+ architecture with random weights. Prints figures, never pass/fail. Needs a CUDA GPU; on a machine
without one it says so and exits 0.

    python bench/validation_memory.py --model 2B --bucket 768x448x89 --validation-dims 704x480x161
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

# The LTX-Video 0.9.5+ VAE architecture (every 0.9.5+ release shares it), as in its diffusers config.json.
VAE_095_CONFIG = dict(
    in_channels=3,
    out_channels=3,
    latent_channels=128,
    block_out_channels=(128, 256, 512, 1024, 2048),
    down_block_types=("LTXVideo095DownBlock3D",) * 4,
    decoder_block_out_channels=(256, 512, 1024),
    layers_per_block=(4, 6, 6, 2, 2),
    decoder_layers_per_block=(5, 5, 5, 5),
    spatio_temporal_scaling=(True, True, True, True),
    decoder_spatio_temporal_scaling=(True, True, True),
    decoder_inject_noise=(False, False, False, False),
    downsample_type=("spatial", "temporal", "spatiotemporal", "spatiotemporal"),
    upsample_residual=(True, True, True),
    upsample_factor=(2, 2, 2),
    timestep_conditioning=True,
    patch_size=4,
    patch_size_t=1,
    resnet_norm_eps=1e-6,
    scaling_factor=1.0,
    encoder_causal=True,
    decoder_causal=False,
    spatial_compression_ratio=32,
    temporal_compression_ratio=8,
)


def _mb(n: int) -> float:
    return round(n / 2**20, 1)


def _dims(text: str) -> tuple[int, int, int]:
    w, h, f = (int(x) for x in text.lower().split("x"))
    return w, h, f


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def _peak(device: torch.device) -> int:
    if device.type != "cuda":
        return 0
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device)


def predicted(args: argparse.Namespace) -> dict | str:
    """The memory plan's figures for the same run (ltx_train_lib.memory, from configs only), in MB: the training
    step, the denoising and the whole validation (denoising or decode, whichever is higher)."""
    try:
        from ltx_train_lib.buckets import parse_buckets
        from ltx_train_lib.config import config_from_dict
        from ltx_train_lib.memory.plan import make_plan
        from ltx_train_lib.models.registry import get_family

        width, height, frames = _dims(args.validation_dims)
        cfg = config_from_dict({
            "model": {"model_source": {"2B": "LTXV_2B_0.9.6_DEV", "13B": "LTXV_13B_097_DEV"}[args.model]},
            "lora": {"rank": args.rank, "alpha": args.rank},
            "optimization": {"batch_size": 1, "enable_gradient_checkpointing": args.gradient_checkpointing},
            "acceleration": {"mixed_precision_mode": "bf16"},
            "validation": {"prompts": ["a prompt"], "interval": 1, "video_dims": [width, height, frames],
                           "guidance_scale": args.guidance_scale},
            "data": {"preprocessed_data_root": "unused"},
        })
        plan = make_plan(cfg, get_family("ltxv"), [parse_buckets(args.bucket)[0].latent_shape], device="cuda")
        train = next(p for p in plan.phases if p.name.startswith("train") and p.chosen)
        sampling = next(p for p in plan.phases if p.name.startswith("validation sampling"))
        decode = next((p for p in plan.phases if p.name.startswith("validation decode")), sampling)
        return {"train": _mb(train.gpu_total), "denoise": _mb(sampling.gpu_total),
                "validation": _mb(max(sampling.gpu_total, decode.gpu_total))}
    except Exception as exc:  # noqa: BLE001 - a side figure: the measurement must still print
        return f"unavailable ({type(exc).__name__}: {exc})"[:120]


def run(args: argparse.Namespace, device: torch.device) -> dict:
    """The figures; ``device`` cpu (``--smoke``: the tiny model) only checks that the code runs."""
    from diffusers import AutoencoderKLLTXVideo, FlowMatchEulerDiscreteScheduler, LTXVideoTransformer3DModel
    from peft import LoraConfig

    from ltx_train_lib.buckets import parse_buckets
    from ltx_train_lib.config import ValidationConfig
    from ltx_train_lib.models.family import ModelComponents, ResolvedSource
    from ltx_train_lib.models.loader import build_random_transformer
    from ltx_train_lib.models.ltxv import tiny
    from ltx_train_lib.models.registry import get_family
    from ltx_train_lib.training.strategy import flow_matching_loss
    from ltx_train_lib.training.validation import ValidationConditions, generate_validation_videos

    dtype = torch.bfloat16
    family = get_family("ltxv")
    smoke = device.type != "cuda"
    with torch.device(device):
        if smoke:
            transformer = LTXVideoTransformer3DModel(**tiny.TRANSFORMER_CONFIG).to(dtype)
        else:
            transformer = build_random_transformer(args.model, dtype=dtype)
    transformer.requires_grad_(False)
    transformer.add_adapter(LoraConfig(r=args.rank, lora_alpha=args.rank, target_modules=list(family.default_lora_targets)))
    params = [p for n, p in transformer.named_parameters() if "lora_" in n]
    for p in params:
        p.data = p.data.float()
        p.requires_grad_(True)
    if args.gradient_checkpointing:
        transformer.enable_gradient_checkpointing()
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    transformer.train()

    bucket = parse_buckets(args.bucket)[0]
    f, h, w = bucket.latent_shape
    channels, text_dim = transformer.config.in_channels, transformer.config.caption_channels
    batch = {
        "latents": torch.randn(1, f * h * w, channels), "prompt_embeds": torch.randn(1, 256, text_dim),
        "prompt_attention_mask": torch.ones(1, 256, dtype=torch.bool), "num_frames": f, "height": h, "width": w,
        "fps": 24.0,
    }
    generator = torch.Generator().manual_seed(0)

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype):
            out = flow_matching_loss(transformer, batch, generator, sampling_mode="shifted_logit_normal", sampling_params={},
                                     first_frame_p=0.1, device=device, model_dtype=dtype)
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()  # the optimizer state exists from here on, as in a run
    _reset_peak(device)
    step()
    train_peak = _peak(device)
    resident = torch.cuda.memory_allocated(device) if not smoke else 0

    with torch.device(device):
        vae = AutoencoderKLLTXVideo(**(tiny.VAE_CONFIG if smoke else VAE_095_CONFIG)).to(dtype)
    vae.use_framewise_encoding = vae.use_framewise_decoding = False
    vae.to("cpu")  # where the trainer keeps it between validations
    components = ModelComponents(source=ResolvedSource("folder", f"random {args.model}"), vae=vae,
                                 scheduler=FlowMatchEulerDiscreteScheduler(**tiny.SCHEDULER_CONFIG))  # LTX's
    width, height, frames = _dims(args.validation_dims)
    cfg = ValidationConfig(prompts=["a prompt"], video_dims=(width, height, frames), inference_steps=args.inference_steps,
                           guidance_scale=args.guidance_scale, frame_rate=24.0)
    cond = {"prompt_embeds": torch.randn(256, text_dim).to(dtype), "prompt_attention_mask": torch.ones(256, dtype=torch.bool)}
    conditions = ValidationConditions(prompts=[cond], negative=dict(cond))
    transformer.eval()
    sampler = family.validation_sampler(components, transformer, device)
    _reset_peak(device)
    with torch.autocast(device.type, dtype=dtype):
        sampler.denoise(cfg, cond, cond, torch.Generator().manual_seed(0), frame_rate=24.0)
    denoise_peak = _peak(device)
    _reset_peak(device)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        generate_validation_videos(components, transformer, cfg, 0, Path(tmp), device, conditions=conditions)
    validation_peak = _peak(device)
    validation_seconds = time.perf_counter() - t0
    vt = family.geometry.token_count(width, height, frames)
    return {
        "model": "tiny" if smoke else args.model, "rank": args.rank, "gradient_checkpointing": args.gradient_checkpointing,
        "train_bucket": str(bucket), "train_tokens": bucket.tokens, "train_step_peak_mb": _mb(train_peak),
        "resident_between_steps_mb": _mb(resident), "validation_dims": args.validation_dims, "validation_tokens": vt,
        "validation_batch": 2 if args.guidance_scale > 1 else 1, "inference_steps": args.inference_steps,
        "validation_denoise_peak_mb": _mb(denoise_peak), "validation_peak_mb": _mb(validation_peak),
        "validation_seconds": round(validation_seconds, 2),
        "validation_vs_training": round(validation_peak / train_peak, 3) if train_peak else None,
        "vae_on_cpu_after": next(vae.parameters()).device.type == "cpu",
        "device": torch.cuda.get_device_name(device) if not smoke else "cpu (smoke run: tiny model, no figures)",
    }


def discard_videos_without_pyav() -> bool:
    """Where PyAV is not installed, let validation's video writer drop the frames instead of failing.

    This bench measures memory; the mp4 a validation writes (after the decode, on the CPU) is not part of any figure.
    The lent GPU machine has no PyAV, and its wheel (36 MB, ffmpeg inside) would take half of what a call may carry,
    so the bench does without it. Returns whether the writer was replaced."""
    import importlib.util
    import types

    if importlib.util.find_spec("av") is not None:
        return False
    media = types.ModuleType("ltx_train_lib.media")
    media.__doc__ = "stand-in installed by bench/validation_memory.py: PyAV is not installed, videos are not written"
    media.write_video = lambda path, frames, fps, **kwargs: None
    sys.modules["ltx_train_lib.media"] = media
    return True


def main() -> int:
    if discard_videos_without_pyav():
        print("bench/validation_memory.py: PyAV is not installed; the validation video is decoded but not written")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="2B", choices=["2B", "13B"], help="the real architecture with random weights")
    p.add_argument("--bucket", default="768x448x89", help="training bucket WxHxF")
    p.add_argument("--rank", type=int, default=32)
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--validation-dims", default="704x480x161", help="validation.video_dims WxHxF")
    p.add_argument("--inference-steps", type=int, default=2, help="memory does not depend on it; time does")
    p.add_argument("--guidance-scale", type=float, default=3.5)
    p.add_argument("--json", action="store_true", help="print one JSON line only")
    p.add_argument("--predict", action="store_true", help="also print the memory plan's predictions beside the figures")
    p.add_argument("--smoke", action="store_true", help="without a GPU: run the code on the CPU with the tiny model (no figures)")
    args = p.parse_args()
    if args.smoke:
        print(json.dumps(run(args, torch.device("cpu"))))
        return 0
    if not torch.cuda.is_available():
        print("bench/validation_memory.py: measures peak GPU memory and needs a CUDA GPU; none here, nothing measured")
        return 0
    r = run(args, torch.device("cuda"))
    if args.json:
        print(json.dumps(r))
        return 0
    print(f"{r['model']} LoRA r{r['rank']} bf16, gc={r['gradient_checkpointing']} ({r['device']})")
    print(f"  training step   {r['train_bucket']:<14} {r['train_tokens']:>6} tokens x1   peak {r['train_step_peak_mb']:>9.0f} MB"
          f"   (resident between steps {r['resident_between_steps_mb']:.0f} MB)")
    print(f"  one validation  {r['validation_dims']:<14} {r['validation_tokens']:>6} tokens x{r['validation_batch']}   "
          f"peak {r['validation_peak_mb']:>9.0f} MB   (denoising only {r['validation_denoise_peak_mb']:.0f} MB; "
          f"{r['inference_steps']} steps + VAE decode in {r['validation_seconds']:.1f} s)")
    print(f"  validation / training peak: x{r['validation_vs_training']:.2f}; VAE back on the CPU: {r['vae_on_cpu_after']}")
    if args.predict:
        pred = predicted(args)
        if isinstance(pred, str):
            print(f"  memory plan: {pred}")
        else:
            measured = {"train": r["train_step_peak_mb"], "denoise": r["validation_denoise_peak_mb"],
                        "validation": r["validation_peak_mb"]}
            print("  memory plan, predicted vs measured (MB): " + ", ".join(
                f"{k} {pred[k]:.0f} vs {measured[k]:.0f} (x{pred[k] / measured[k]:.2f})" for k in pred if measured[k]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
