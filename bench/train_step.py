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

`--loop trainer` times the real `Trainer` loop instead (tiny models only: batches from a precomputed folder, step
events, checks, the LR schedule): each option set runs in its own process (its own peak RSS), `--repeat` interleaves
the sets that many times and prints the median ratio with its spread. Option keys: `compile=on|off`,
`optimizer=adamw|adamw8bit`, `impl=auto|fused|foreach|for_loop` (AdamW's implementation), `fsync=step` (an events
file fsynced on every step event, as before the throttle), `lib=PATH` (another checkout's ltx_train_lib, e.g. the
main branch, for before/after in one run), `accum=N`, `workers=N`, `precision=bf16|fp32`.

    python bench/train_step.py --loop trainer --steps 60 --repeat 5 --compare lib=/work/main ''
    python bench/train_step.py --loop trainer --precision fp32 --compare impl=for_loop impl=foreach impl=fused
    python bench/train_step.py --precision fp32 --compare compile=off compile=on   # the bare objective, compiled
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# LTX_BENCH_LIB: the checkout whose ltx_train_lib is measured (the trainer loop's lib=PATH option sets it per run).
sys.path.insert(0, os.environ.get("LTX_BENCH_LIB") or str(Path(__file__).resolve().parents[1]))

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
        impl = options.get("impl", args.impl)
        optimizer = torch.optim.AdamW(params, lr=1e-4, fused=True if impl == "fused" else None,
                                      foreach=True if impl == "foreach" else (False if impl == "for_loop" else None))
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
        "quantization": quantization, "impl": options.get("impl", args.impl),
        "device": str(device), "s_per_step": round(seconds, 4), "steps_per_s": round(1 / seconds, 3),
        "peak_memory_mb": round(peak_memory_mb(device), 1),
    }
    if args.predict:
        result["predicted_peak_mb"] = predicted_peak_mb(args, precision=precision, gc_on=gc_on,
                                                        optimizer_name=optimizer_name, rank=rank, device=device,
                                                        quantization=quantization)
    return result


def make_dataset(root: Path, model: str, clips: int, bucket: str, seed: int = 0) -> Path:
    """A ``.precomputed`` folder of random latents/conditions in the cache's schema, for the tiny models."""
    from ltx_train_lib.models.loader import load_components

    config = load_components(model, ("transformer",)).transformer.config
    f, h, w = parse_buckets(bucket)[0].latent_shape
    g = torch.Generator().manual_seed(seed)
    pre = root / ".precomputed"
    for sub in ("latents", "conditions"):
        (pre / sub).mkdir(parents=True, exist_ok=True)
    for i in range(clips):
        name = f"clip_{i:03d}.mp4.pt"
        torch.save({"latents": torch.randn(f * h * w, config.in_channels, generator=g).to(torch.bfloat16),
                    "num_frames": f, "height": h, "width": w, "fps": 24.0}, pre / "latents" / name)
        mask = torch.zeros(family_of(model).text_max_tokens, dtype=torch.bool)
        mask[:8] = True
        torch.save({"prompt_embeds": torch.randn(mask.numel(), config.caption_channels, generator=g).to(torch.bfloat16),
                    "prompt_attention_mask": mask}, pre / "conditions" / name)
    return root


def trainer_child(args: argparse.Namespace, options: dict[str, str], data_root: Path) -> dict:
    """One real Trainer run in this process: the seconds between step events after the warm-up steps."""
    from ltx_train_lib.config import config_from_dict
    from ltx_train_lib.events import EventWriter
    from ltx_train_lib.training.trainer import Trainer

    precision = options.get("precision", args.precision)
    out = Path(tempfile.mkdtemp(prefix="bench_trainer_"))
    raw = {
        "model": {"model_source": args.model, "training_mode": args.mode},
        "lora": {"rank": int(options.get("rank", args.rank)), "alpha": int(options.get("rank", args.rank))} if args.mode == "lora" else None,
        "optimization": {"learning_rate": 1e-4, "steps": args.warmup + args.steps, "batch_size": args.batch_size,
                         "gradient_accumulation_steps": int(options.get("accum", 1)),
                         "optimizer_type": options.get("optimizer", args.optimizer), "scheduler_type": "constant"},
        "acceleration": {"mixed_precision_mode": {"fp32": "no"}.get(precision, precision),
                         "compile_with_inductor": options.get("compile", "on" if args.compile else "off") == "on"},
        "data": {"preprocessed_data_root": str(data_root), "num_dataloader_workers": int(options.get("workers", 0))},
        "validation": {"prompts": [], "interval": None},
        "checkpoints": {"interval": None},
        "output_dir": str(out),
    }
    impl = options.get("impl", args.impl)
    if impl != "default":  # an older checkout (lib=) has no such field: leave it out unless asked for
        raw["optimization"]["optimizer_implementation"] = impl
    times: list[float] = []

    def on_event(record: dict) -> None:
        if record["event"] == "step":
            times.append(time.perf_counter())

    events = EventWriter(out / "events.jsonl", complete=True)
    if options.get("fsync") == "step":
        events.fsync_interval_s = 0.0  # the writer before the throttle: every step event fsynced
    trainer = Trainer(config_from_dict(raw), events=events, listeners=[on_event])
    trainer.train()
    seconds = (times[-1] - times[args.warmup - 1]) / args.steps if args.warmup else (times[-1] - times[0]) / (len(times) - 1)
    return {"model": args.model, "loop": "trainer", "s_per_step": round(seconds, 5), "steps_per_s": round(1 / seconds, 3),
            "peak_memory_mb": round(peak_memory_mb(torch.device("cpu")) if not torch.cuda.is_available()
                                    else torch.cuda.max_memory_allocated() / 2**20, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "optimizer_implementation": getattr(trainer.cfg.optimization, "optimizer_implementation", "for_loop (torch default)"),
            "compile": raw["acceleration"]["compile_with_inductor"], "precision": precision}


def run_trainer_sets(args: argparse.Namespace, option_sets: list[dict[str, str]]) -> list[list[dict]]:
    """Each option set in its own process, the list repeated ``--repeat`` times (interleaved: A B A B ...)."""
    if args.model not in ("tiny", "tiny-ltx2"):
        raise SystemExit("--loop trainer runs the tiny models only (tiny, tiny-ltx2)")
    data_root = Path(tempfile.mkdtemp(prefix="bench_data_"))
    make_dataset(data_root, args.model, clips=4, bucket=args.bucket)
    runs: list[list[dict]] = [[] for _ in option_sets]
    for _ in range(args.repeat):
        for i, opts in enumerate(option_sets):
            env = dict(os.environ)
            env.pop("LTX_BENCH_LIB", None)
            if opts.get("lib"):
                env["LTX_BENCH_LIB"] = str(Path(opts["lib"]).resolve())
            cmd = [sys.executable, __file__, "--child", json.dumps({"options": opts, "data": str(data_root)}),
                   *sys.argv[1:]]
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
            lines = [x for x in done.stdout.splitlines() if x.startswith("{")]
            if done.returncode or not lines:
                raise SystemExit(f"option set {opts} failed:\n{done.stderr[-3000:]}")
            runs[i].append(json.loads(lines[-1]))
    return runs


def print_trainer_runs(option_sets: list[dict[str, str]], runs: list[list[dict]], as_json: bool) -> None:
    """Median s/step and peak RSS per option set; the ratio to the first set per repetition (same moment of a shared
    machine), as median [min-max]."""
    for opts, rs in zip(option_sets, runs, strict=True):
        ratios = [r["s_per_step"] / b["s_per_step"] for r, b in zip(rs, runs[0], strict=True)]
        rss = [r["peak_rss_mb"] for r in rs]
        summary = {"options": opts, "repeats": len(rs), "median_s_per_step": statistics.median(r["s_per_step"] for r in rs),
                   "median_speed_vs_first": round(statistics.median(1 / x for x in ratios), 3),
                   "speed_vs_first_range": [round(1 / max(ratios), 3), round(1 / min(ratios), 3)],
                   "median_peak_rss_mb": statistics.median(rss), "peak_rss_range_mb": [min(rss), max(rss)],
                   "optimizer_implementation": rs[0]["optimizer_implementation"], "compile": rs[0]["compile"]}
        if as_json:
            print(json.dumps(summary))
        else:
            print(f"trainer loop {json.dumps(opts) or '{}':<40} {summary['median_s_per_step']:.4f} s/step  "
                  f"speed x{summary['median_speed_vs_first']:.2f} vs first [{summary['speed_vs_first_range'][0]:.2f}-"
                  f"{summary['speed_vs_first_range'][1]:.2f}]  peak RSS {summary['median_peak_rss_mb']:.0f} MB "
                  f"[{min(rss):.0f}-{max(rss):.0f}]  (n={len(rs)}, optimizer {summary['optimizer_implementation']}, "
                  f"compile={summary['compile']})")


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
    p.add_argument("--impl", default="default", choices=["default", "auto", "fused", "foreach", "for_loop"],
                   help="AdamW's implementation (default: torch's choice in the bare loop, the trainer's 'auto' in --loop trainer)")
    p.add_argument("--loop", default="objective", choices=["objective", "trainer"],
                   help="time the bare objective (forward, backward, optimizer) or the real Trainer loop (tiny models)")
    p.add_argument("--repeat", type=int, default=1, help="--loop trainer: run the option sets this many times, interleaved")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--device", default=None)
    p.add_argument("--compare", nargs="*", default=[], help="option sets like gc=on,precision=fp32 run side by side; ratios vs the first")
    p.add_argument("--json", action="store_true", help="print JSON lines only")
    p.add_argument("--predict", action="store_true",
                   help="also print the memory plan's predicted peak (ltx_train_lib.memory) beside the measured one")
    args = p.parse_args()
    option_sets = [dict(kv.split("=", 1) for kv in s.split(",") if kv) for s in args.compare] or [{}]
    if args.child:
        child = json.loads(args.child)
        print(json.dumps(trainer_child(args, child["options"], Path(child["data"]))))
        return
    if args.loop == "trainer":
        print_trainer_runs(option_sets, run_trainer_sets(args, option_sets), args.json)
        return
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
