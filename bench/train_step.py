#!/usr/bin/env python
"""Training-step throughput and peak memory for one model size, bucket and set of options.

Prints figures (s/step, steps/s, peak memory), never pass/fail. Runs the real training objective
(`flow_matching_loss`) on random latents/embeddings of the bucket's shape, with the same LoRA/optimizer setup as the
trainer. `--model tiny` / `tiny-ltx2` use the tiny random models; `2B`/`13B` (LTX-Video) and `19B` (LTX-2, with an audio stream of the clip's length,
training video and sound) build the real architecture
with random weights (no download). `--compare` runs a list of option sets side by side in one process and prints ratios against the first.

    python bench/train_step.py --model tiny --bucket 64x64x9
    python bench/train_step.py --model 2B --bucket 768x448x89 --rank 32 --precision bf16 --compare gc=off gc=on
    python bench/train_step.py --model 19B --bucket 768x512x121 --rank 32 --precision bf16 --gradient-checkpointing
    python bench/train_step.py --model tiny --predict      # with the memory plan's predicted peak beside the measured

On CPU the measured figure is the process's peak RSS (everything), on CUDA torch's peak allocation during the steps
(what the plan predicts; the model build before them is not counted).
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from ltx_train_lib.buckets import parse_buckets  # noqa: E402
from ltx_train_lib.training.strategy import MODALITY_PLANS, flow_matching_loss  # noqa: E402

LTX2_SIZES = ("19B",)  # the 22B architectures ship with their weights (read from the files)


def family_of(model: str):
    from ltx_train_lib.models.registry import get_family

    return get_family("ltx2" if model == "tiny-ltx2" or model in LTX2_SIZES else "ltxv")


def build_transformer(model: str, dtype: torch.dtype, device: torch.device):
    if model in ("tiny", "tiny-ltx2"):
        from ltx_train_lib.models.loader import load_components

        return load_components(model, ("transformer",), transformer_dtype=dtype).transformer.to(device)
    from ltx_train_lib.models.loader import build_random_transformer

    with torch.device(device):
        return build_random_transformer(model, dtype=dtype, family=family_of(model).name)


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


SOURCES = {"tiny": "tiny", "tiny-ltx2": "tiny-ltx2", "2B": "LTXV_2B_0.9.6_DEV", "13B": "LTXV_13B_097_DEV", "19B": "LTX-2_19B_DEV"}


def predicted_peak_mb(args: argparse.Namespace, *, precision: str, gc_on: bool, optimizer_name: str, rank: int,
                      device: torch.device, quantization: str | None = None) -> float | str:
    """The memory plan's peak for this step (ltx_train_lib.memory, built from configs only), in MB, to print
    beside the measured one; a reason instead when the plan cannot be made here (e.g. pydantic missing)."""
    try:
        from ltx_train_lib.config import config_from_dict
        from ltx_train_lib.memory.plan import make_plan
        from ltx_train_lib.models.registry import family_for_source

        cfg = config_from_dict({
            "model": {"model_source": SOURCES[args.model], "training_mode": args.mode},
            "lora": {"rank": rank, "alpha": rank} if args.mode == "lora" else None,
            "optimization": {"batch_size": args.batch_size, "enable_gradient_checkpointing": gc_on,
                             "optimizer_type": optimizer_name},
            "acceleration": {"mixed_precision_mode": {"fp32": "no"}.get(precision, precision), "quantization": quantization},
            "validation": {"prompts": [], "interval": None},
            "data": {"preprocessed_data_root": "unused"},
        })
        family = family_for_source(cfg.model.model_source)
        bucket = parse_buckets(args.bucket)[0]
        plan = make_plan(cfg, family, [bucket.latent_shape], device=device.type)
        return round(plan.peak_gpu / 2**20, 1)
    except Exception as exc:  # noqa: BLE001 - the prediction is a side figure: the measurement must still print
        return f"unavailable ({type(exc).__name__}: {exc})"[:120]


def run(args: argparse.Namespace, options: dict[str, str]) -> dict:
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    precision = options.get("precision", args.precision)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[precision]
    gc_on = options.get("gc", "on" if args.gradient_checkpointing else "off") == "on"
    compile_on = options.get("compile", "on" if args.compile else "off") == "on"
    optimizer_name = options.get("optimizer", args.optimizer)
    rank = int(options.get("rank", args.rank))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    transformer = build_transformer(args.model, dtype if args.mode == "lora" else torch.float32, device)
    transformer.requires_grad_(False)
    quantization = options.get("quant", args.quantization)
    quantization = None if quantization in (None, "none") else quantization
    if quantization:
        from ltx_train_lib.training.quantization import (
            check_quantization,
            quantize_frozen_base,
            training_cuda_capability,
        )

        check_quantization(quantization, training_cuda_capability() if device.type == "cuda" else None)
        quantize_frozen_base(transformer, quantization, family_of(args.model).quantization_exclusions)
    if args.mode == "lora":
        from peft import LoraConfig

        targets = list(family_of(args.model).lora_targets_for("audio_video" if family_of(args.model).audio_sample_rate else "video"))
        transformer.add_adapter(LoraConfig(r=rank, lora_alpha=rank, target_modules=targets))
        params = [p for n, p in transformer.named_parameters() if "lora_" in n]
        for p in params:
            p.data = p.data.float()
            p.requires_grad_(True)
    else:
        transformer.requires_grad_(True)
        params = list(transformer.parameters())
    if gc_on:
        transformer.enable_gradient_checkpointing()
    if compile_on:
        for i, block in enumerate(transformer.transformer_blocks):
            transformer.transformer_blocks[i] = torch.compile(block)
    if optimizer_name == "adamw8bit":
        import bitsandbytes as bnb

        optimizer = bnb.optim.AdamW8bit(params, lr=1e-4)
    else:
        optimizer = torch.optim.AdamW(params, lr=1e-4)
    transformer.train()

    bucket = parse_buckets(args.bucket)[0]
    f, h, w = bucket.latent_shape
    family = family_of(args.model)
    config = transformer.config
    channels = config.in_channels
    text_len = family.text_max_tokens
    fps = 25.0 if family.audio_sample_rate else 24.0
    if family.audio_sample_rate and not config.get("use_prompt_embeddings", True):
        # LTX-2.3+: the connectors project into each stream's width
        text_dim, audio_text_dim = config.num_attention_heads * config.attention_head_dim, (
            config.audio_num_attention_heads * config.audio_attention_head_dim)
    else:
        text_dim = audio_text_dim = config.caption_channels
    batch = {
        "latents": torch.randn(args.batch_size, f * h * w, channels),
        "prompt_embeds": torch.randn(args.batch_size, text_len, text_dim),
        "prompt_attention_mask": torch.ones(args.batch_size, text_len, dtype=torch.bool),
        "num_frames": f, "height": h, "width": w, "fps": fps,
    }
    modalities = MODALITY_PLANS["video"]
    audio_tokens = 0
    if family.audio_sample_rate:
        audio_tokens, audio_ch = family.audio_token_shape(transformer, (f, h, w), fps)
        batch["audio_latents"] = torch.randn(args.batch_size, audio_tokens, audio_ch)
        batch["audio_prompt_embeds"] = torch.randn(args.batch_size, text_len, audio_text_dim)
        modalities = MODALITY_PLANS["audio_video"]
    generator = torch.Generator().manual_seed(0)
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)

    def step() -> float:
        with autocast:
            out = flow_matching_loss(transformer, batch, generator, sampling_mode="shifted_logit_normal", sampling_params={},
                                     first_frame_p=0.1, device=device, model_dtype=dtype if args.mode == "lora" else torch.float32,
                                     family=family, modalities=modalities)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return out.loss.item()

    if device.type == "cuda":
        # The steps' peak, not the model build's (the random weights are made in fp32 and then cast).
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(args.warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - t0) / args.steps
    result = {
        "model": args.model, "mode": args.mode, "bucket": str(bucket), "tokens": bucket.tokens, "audio_tokens": audio_tokens,
        "batch_size": args.batch_size,
        "precision": precision, "gradient_checkpointing": gc_on, "compile": compile_on, "optimizer": optimizer_name, "rank": rank,
        "quantization": quantization,
        "device": str(device), "s_per_step": round(seconds, 4), "steps_per_s": round(1 / seconds, 3),
        "peak_memory_mb": round(peak_memory_mb(device), 1),
    }
    if args.predict:
        result["predicted_peak_mb"] = predicted_peak_mb(args, precision=precision, gc_on=gc_on,
                                                        optimizer_name=optimizer_name, rank=rank, device=device,
                                                        quantization=quantization)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="tiny", choices=["tiny", "tiny-ltx2", "2B", "13B", *LTX2_SIZES],
                   help="a tiny random model, or the real architecture with random weights")
    p.add_argument("--mode", default="lora", choices=["lora", "full"])
    p.add_argument("--bucket", default="64x64x9", help="WxHxF")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--rank", type=int, default=32)
    p.add_argument("--precision", default="bf16", choices=["bf16", "fp16", "fp32"])
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--optimizer", default="adamw", choices=["adamw", "adamw8bit"])
    p.add_argument("--quantization", default=None, help="acceleration.quantization of the frozen base, e.g. int8-torchao "
                   "(LoRA only); in --compare sets: quant=int8-torchao, quant=none")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--device", default=None)
    p.add_argument("--compare", nargs="*", default=[], help="option sets like gc=on,precision=fp32 run side by side; ratios vs the first")
    p.add_argument("--json", action="store_true", help="print JSON lines only")
    p.add_argument("--predict", action="store_true",
                   help="also print the memory plan's predicted peak (ltx_train_lib.memory) beside the measured one")
    args = p.parse_args()
    option_sets = [dict(kv.split("=", 1) for kv in s.split(",") if kv) for s in args.compare] or [{}]
    results = []
    for opts in option_sets:
        results.append(run(args, opts))
        gc.collect()  # the previous option set's model and optimizer are unreachable once run() returns
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    base = results[0]["s_per_step"]
    for opts, r in zip(option_sets, results, strict=True):
        r["options"] = opts
        r["ratio_vs_first"] = round(r["s_per_step"] / base, 3)
        if args.json:
            print(json.dumps(r))
        else:
            print(f"{r['model']:>4} {r['mode']:<4} {r['bucket']:<12} tokens {r['tokens']:>5}  {json.dumps(opts) or '{}':<28} "
                  f"{r['s_per_step']:.4f} s/step  {r['steps_per_s']:.2f} steps/s  peak {r['peak_memory_mb']:.0f} MB  "
                  f"x{r['ratio_vs_first']:.2f} vs first  ({r['device']}, {r['precision']}, gc={r['gradient_checkpointing']}"
                  f"{', base ' + r['quantization'] if r['quantization'] else ''})")
            if "predicted_peak_mb" in r:
                pred = r["predicted_peak_mb"]
                cuda = r["device"].startswith("cuda")  # on CPU the measured figure is the whole process's RSS
                ratio = f"  (predicted/measured {pred / r['peak_memory_mb']:.2f})" if isinstance(pred, float) and cuda else ""
                print(f"     memory: predicted peak {pred} MB, measured {r['peak_memory_mb']:.0f} MB{ratio}")


if __name__ == "__main__":
    main()
