#!/usr/bin/env python
"""Measure LTX-Video activations on CPU and fit the coefficients of ``ltx_train_lib/models/ltxv/memory.py``.

Builds random LTX-Video transformers of a grid of small sizes, trains them the trainer's way (LoRA or full, bf16
autocast or fp32, with and without gradient checkpointing), counts what autograd keeps with saved-tensor hooks
(``ltx_train_lib.memory.measure``) and what one no-grad forward holds, fits bytes per term of
``LtxvArchitecture.terms`` by least squares and prints the table (paste it over ``COEFFICIENTS``), with the largest
relative error of each fit and, with ``--check``, of the table in the file against the measurements. Takes a few
minutes on two cores.

    python bench/calibrate_activations.py [--check]
"""

from __future__ import annotations

import argparse
import itertools
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from ltx_train_lib.config import config_from_dict  # noqa: E402
from ltx_train_lib.memory import calibrate  # noqa: E402
from ltx_train_lib.memory.profile import StepShape  # noqa: E402
from ltx_train_lib.models.family import ForwardInputs  # noqa: E402
from ltx_train_lib.models.ltxv import memory as ltxv_memory  # noqa: E402
from ltx_train_lib.models.registry import get_family  # noqa: E402
from ltx_train_lib.training.model_setup import build_trainable_model  # noqa: E402

FAMILY = get_family("ltxv")
TARGETS = (("to_q", "to_k", "to_v", "to_out.0"), ("to_q", "to_k", "to_v", "to_out.0", "ff.net.0.proj", "ff.net.2"))
# (heads, head dim, blocks, in channels, caption channels): channels vary independently of the hidden size, so that
# every term is identified (real models have 128 in and 4096 caption channels at hidden 2048/4096).
ARCHS = [(4, 8, 2, 8, 32), (4, 8, 2, 32, 48), (8, 16, 3, 16, 64), (2, 64, 2, 8, 32), (8, 32, 2, 32, 128)]
# (batch, latent shape, text tokens, rank, dropout)
STEPS = [(1, (2, 4, 4), 256, 4, 0.0), (2, (3, 8, 8), 256, 8, 0.0), (1, (3, 8, 8), 64, 4, 0.1), (1, (5, 8, 8), 128, 16, 0.0),
         (2, (2, 6, 6), 100, 4, 0.1)]


def build(arch, *, mode: str, rank: int, dropout: float, targets, amp: bool, fp32_base: bool, gc: bool):
    heads, head_dim, blocks, cin, cap = arch
    torch.manual_seed(0)
    model = ltxv_memory.build_meta_transformer(dict(in_channels=cin, out_channels=cin, num_attention_heads=heads,
                                                    attention_head_dim=head_dim, cross_attention_dim=heads * head_dim,
                                                    num_layers=blocks, caption_channels=cap)).to_empty(device="cpu")
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.02)
    base = torch.bfloat16 if (amp and mode == "lora" and not fp32_base) else torch.float32
    model = model.to(base)
    cfg = config_from_dict({
        "model": {"model_source": "tiny", "training_mode": mode},
        "lora": {"rank": rank, "alpha": rank, "dropout": dropout, "target_modules": list(targets)} if mode == "lora" else None,
        "optimization": {"enable_gradient_checkpointing": gc},
        "acceleration": {"mixed_precision_mode": "bf16" if amp else "no"},
        "data": {"preprocessed_data_root": "unused"},
    })
    model, _ = build_trainable_model(cfg, FAMILY, model, torch.device("cpu"))
    return model, base


def shape_of(step, arch, *, mode, amp, fp32_base, gc, targets) -> StepShape:
    batch, (f, h, w), text, rank, dropout = step
    return StepShape(batch, f * h * w, text, amp, mode, rank if mode == "lora" else 0, dropout > 0, gc, fp32_base, tuple(targets))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="also print the error of the table in memory.py")
    p.add_argument("--only", default=None, help="calibrate some training mode/precision pairs only, e.g. lora/amp,lora/fp32")
    p.add_argument("--sampling", action="store_true", help="also measure no-grad forwards (the plan bounds them from the training table)")
    args = p.parse_args()
    logging.disable(logging.WARNING)
    rows: dict[str, list] = {}
    for mode, amp in itertools.product(("lora", "full"), (False, True)):
        prec = "amp" if amp else "fp32"
        if args.only and f"{mode}/{prec}" not in args.only.split(","):
            continue
        # A LoRA over an fp32 base under autocast (fp16 mixed precision) uses the full fine-tune's coefficients.
        variants = [(t, False) for t in TARGETS] if mode == "lora" else [((), False)]
        for arch, step, (targets, fp32_base), gc in itertools.product(ARCHS, STEPS, variants, (False, True)):
            batch_size, latent, text, rank, dropout = step
            if mode == "full":
                rank, dropout = 0, 0.0
            model, base = build(arch, mode=mode, rank=max(rank, 1), dropout=dropout, targets=targets, amp=amp,
                                fp32_base=fp32_base, gc=gc)
            shape = shape_of((batch_size, latent, text, rank, dropout), arch, mode=mode, amp=amp, fp32_base=fp32_base,
                             gc=gc, targets=targets)
            terms = ltxv_memory.LtxvArchitecture(model).terms(shape)
            batch = ltxv_memory.random_batch(model, latent, batch_size, text)
            saved = calibrate.measure_training(FAMILY, model, batch, amp=amp, model_dtype=base, checkpointing=gc)
            if not gc:
                rows.setdefault(f"{mode}/{prec}/block", []).append((terms["block"], saved.per_block[1]))
                rows.setdefault(f"{mode}/{prec}/outside", []).append((terms["outside"], saved.shared + saved.outside))
                if mode == "lora":  # the first block's input needs no gradient in a LoRA: it keeps less
                    rows.setdefault(f"{mode}/{prec}/first", []).append((terms["block"], saved.per_block[0]))
            else:
                rows.setdefault(f"{mode}/{prec}/outside_gc", []).append((terms["outside"], saved.total))
            if args.sampling and mode == "lora" and not gc and targets == TARGETS[0] and not fp32_base:
                model.eval()
                f, h, w = latent
                for n in (1, 2):
                    inputs = ForwardInputs(
                        tokens=torch.randn(n, f * h * w, model.config.in_channels),
                        timesteps=torch.full((n, f * h * w), 500.0),
                        prompt_embeds=torch.randn(n, text, model.config.caption_channels),
                        prompt_attention_mask=torch.ones(n, text, dtype=torch.bool), latent_shape=latent, fps=24.0)
                    peak = calibrate.measure_sampling(FAMILY, model, inputs, amp=amp, model_dtype=base)
                    sample_terms = ltxv_memory.LtxvArchitecture(model).terms(StepShape(n, f * h * w, text, amp))["sampling"]
                    rows.setdefault(f"sampling/{prec}", []).append((sample_terms, peak))
    table, errors = {}, {}
    for key, data in rows.items():
        table[key], errors[key] = calibrate.fit(data)
    print("COEFFICIENTS: dict[str, dict[str, float]] = " + calibrate.describe(table))
    for key in sorted(errors):
        line = f"# {key}: {len(rows[key])} measurements, largest fit error {errors[key]:.2%}"
        if args.check and key in ltxv_memory.COEFFICIENTS:
            coef = ltxv_memory.COEFFICIENTS[key]
            worst = max(abs(sum(coef.get(n, 0.0) * v for n, v in t.items()) - m) / max(m, 1) for t, m in rows[key])
            line += f"; the table in memory.py: {worst:.2%}"
        print(line)


if __name__ == "__main__":
    main()
