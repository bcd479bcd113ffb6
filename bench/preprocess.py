#!/usr/bin/env python3
"""Preprocessing throughput: generate N clips, preprocess them once, print clips per second.

    python bench/preprocess.py                        # tiny random-weight model (offline), 8 clips
    python bench/preprocess.py --clips 32 --size 768x448 --frames 97 --buckets 768x448x89 \
        --model-source LTXV_2B_0.9.6_DEV --device cuda

Figures only, never pass/fail. The first run includes model loading (as a user's run does); the re-run line shows
the cost of a cache hit (manifest check only, no model loaded).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips", type=int, default=8, help="number of generated clips (default 8)")
    p.add_argument("--size", default="128x96", help="clip size WxH (default 128x96)")
    p.add_argument("--frames", type=int, default=30, help="frames per clip (default 30)")
    p.add_argument("--fps", type=float, default=24)
    p.add_argument("--buckets", default="128x96x25", help="resolution buckets (default 128x96x25)")
    p.add_argument("--model-source", default="tiny")
    p.add_argument("--device", default=None)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--decode-videos", action="store_true")
    args = p.parse_args(argv)

    import os

    t0 = time.perf_counter()
    import diffusers  # noqa: F401 - imported here so the timed run measures the work, not Python imports
    import torch
    import transformers.utils.logging as tlog

    imports = time.perf_counter() - t0

    from ltx_train_lib.precompute import preprocess_dataset
    from ltx_train_lib.synthetic import make_scene_video

    tlog.disable_progress_bar()
    width, height = (int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory(prefix="bench_preprocess_") as tmp:
        root = Path(tmp)
        entries = []
        for i in range(args.clips):
            name = f"clip_{i:03d}.mp4"
            make_scene_video(root / name, cuts=(), num_frames=args.frames, fps=args.fps, size=(width, height), seed=i)
            entries.append({"caption": f"synthetic clip number {i} with moving shapes", "media_path": name})
        (root / "captions.json").write_text(json.dumps(entries))

        kwargs = dict(
            model_source=args.model_source,
            device=args.device,
            batch_size=args.batch_size,
            decode_videos=args.decode_videos,
        )
        start = time.perf_counter()
        result = preprocess_dataset(root, args.buckets, **kwargs)
        seconds = time.perf_counter() - start
        start = time.perf_counter()
        preprocess_dataset(root, args.buckets, **kwargs)
        rerun = time.perf_counter() - start

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    n = result.samples
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"model: {args.model_source}  device: {device}  torch threads: {torch.get_num_threads()}  load avg: {load}")
    print(f"library imports (not counted below): {imports:.1f} s")
    print(f"clips: {n} of {args.size}x{args.frames} -> buckets {args.buckets}  batch size: {args.batch_size}")
    if result.skipped:
        print(f"skipped: {len(result.skipped)} ({result.skipped[0][1]})")
    if n:
        print(
            f"first run (incl. model loading): {seconds:.2f} s = {n / seconds:.2f} clips/s = {seconds / n:.3f} s/clip"
        )
        print(f"re-run (cache hit): {rerun:.3f} s = {rerun / n * 1000:.1f} ms/clip")
    return 0


if __name__ == "__main__":
    sys.exit(main())
