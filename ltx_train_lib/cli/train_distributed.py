"""`python scripts/train_distributed.py CONFIG [--num_processes N] [--disable_progress_bars]` — training under
`accelerate launch` (DDP; FSDP for full fine-tunes; multi-node through accelerate's own flags).

The command line itself is :func:`ltx_train_lib.jobs.build_launch_command`, shared with the TrainLoRA node.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from ltx_train_lib.jobs.launch import build_launch_command

# The workers watch this process (ltx_train_lib.training.liveness.LAUNCHER_PID_ENV, restated: importing it imports
# torch): `accelerate launch` outlives a SIGKILL of this script, so only the workers' own watch can end them then.
LAUNCHER_PID_ENV = "LTX_TRAIN_LAUNCHER_PID"


def default_num_processes() -> int:
    try:
        import torch

        return max(torch.cuda.device_count(), 1)
    except Exception:  # noqa: BLE001
        return 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="train_distributed.py", description="Run the trainer on several processes with Hugging Face Accelerate.")
    p.add_argument("config", help="YAML training config")
    p.add_argument("--num_processes", "--num-processes", type=int, default=None, help="processes per machine (default: number of GPUs, or 1)")
    p.add_argument("--disable_progress_bars", "--disable-progress-bars", action="store_true", help="plain log lines instead of progress bars")
    p.add_argument("--fsdp", action="store_true", help="shard the model with FSDP (full fine-tuning of large models)")
    p.add_argument("--num_machines", type=int, default=1, help="machines taking part (multi-node)")
    p.add_argument("--machine_rank", type=int, default=0, help="this machine's rank (multi-node)")
    p.add_argument("--main_process_ip", default=None, help="address of machine 0 (multi-node)")
    p.add_argument("--main_process_port", type=int, default=None, help="port on machine 0")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not Path(args.config).is_file():
        print(f"error: {args.config}: config file not found; pass the path of a YAML training config", file=sys.stderr)
        return 2
    n = args.num_processes or default_num_processes()
    if n < 1:
        print(f"error: --num_processes must be >= 1, got {n}", file=sys.stderr)
        return 2
    block_class = None
    if args.fsdp:
        from ltx_train_lib.config import load_config
        from ltx_train_lib.errors import LtxTrainError
        from ltx_train_lib.models.registry import family_for_source

        try:  # FSDP wraps the model family's transformer block class
            block_class = family_for_source(load_config(args.config).model.model_source).fsdp_block_class
        except LtxTrainError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    cmd = build_launch_command(
        args.config, n, disable_progress_bars=args.disable_progress_bars, fsdp=args.fsdp, num_machines=args.num_machines,
        **({"fsdp_block_class": block_class} if block_class else {}),
        machine_rank=args.machine_rank, main_process_ip=args.main_process_ip, main_process_port=args.main_process_port,
    )
    env = dict(os.environ, PYTHONUNBUFFERED="1", **{LAUNCHER_PID_ENV: str(os.getpid())})
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // n)))
    return subprocess.call(cmd, env=env)


if __name__ == "__main__":
    sys.exit(main())
