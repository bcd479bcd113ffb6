"""The ``accelerate launch`` command line that runs the trainer in every process, and the child's environment.

Used by :func:`ltx_train_lib.jobs.start_job` (the TrainLoRA node) and by ``scripts/train_distributed.py``
(:mod:`ltx_train_lib.cli.train_distributed`), so both start training the same way.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

# The trainer stops (with a checkpoint) when this process dies; the name is ltx_train_lib.training.trainer's
# PARENT_PID_ENV, restated here because importing the trainer imports torch.
PARENT_PID_ENV = "LTX_TRAIN_PARENT_PID"
# What FSDP wraps as one shard unit when the caller names none (callers pass their model family's fsdp_block_class).
DEFAULT_FSDP_BLOCK_CLASS = "LTXVideoTransformerBlock"
TRAINER_MODULE = "ltx_train_lib.cli.train"
ACCELERATE_LAUNCH_MODULE = "ltx_train_lib.cli.accelerate_launch"
# The folder that holds the ltx_train_lib package (ComfyUI loads the pack by path, not by install).
_LIB_ROOT = str(Path(__file__).resolve().parents[2])


def _cuda_available() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:  # noqa: BLE001 - no torch or a broken CUDA setup: train on the CPU
        return False


def build_launch_command(
    config: str,
    num_processes: int,
    *,
    disable_progress_bars: bool = False,
    fsdp: bool = False,
    fsdp_block_class: str = DEFAULT_FSDP_BLOCK_CLASS,
    num_machines: int = 1,
    machine_rank: int = 0,
    main_process_ip: str | None = None,
    main_process_port: int | None = None,
    events_stdout: bool = False,
    extra_accelerate_args: list[str] | None = None,
    cuda: bool | None = None,
) -> list[str]:
    """The `accelerate launch` command line that runs our trainer module in every process.

    ``cuda`` None asks torch (imported only then); ``fsdp_block_class`` names the transformer block class FSDP wraps.
    """
    if cuda is None:
        cuda = _cuda_available()
    # accelerate launch, ending with the failed rank's exit code instead of a traceback (ltx_train_lib.cli.accelerate_launch)
    cmd = [sys.executable, "-m", ACCELERATE_LAUNCH_MODULE]
    total = num_processes * num_machines
    if fsdp:
        # FSDP2 (torch's fully_shard through accelerate): parameters and optimizer state sharded over the processes
        # (FULL_SHARD), one shard unit per transformer block. SHARDED_STATE_DICT: checkpoints are written per rank by
        # torch.distributed.checkpoint (ltx_train_lib.training.checkpoint_io); only the final weights are gathered.
        # No cpu_ram_efficient_loading: every rank loads the base itself (rank 0 broadcasting it needs the GPU path).
        cmd += [
            "--use_fsdp",
            "--fsdp_version",
            "2",
            "--fsdp_reshard_after_forward",
            "true",
            "--fsdp_auto_wrap_policy",
            "TRANSFORMER_BASED_WRAP",
            "--fsdp_transformer_layer_cls_to_wrap",
            fsdp_block_class,
            "--fsdp_state_dict_type",
            "SHARDED_STATE_DICT",
            "--fsdp_cpu_ram_efficient_loading",
            "false",
        ]
    elif total > 1:
        # On CPU-only machines this still gives gloo DDP; `--cpu` with several processes would need mpirun.
        cmd += ["--multi_gpu"]
    elif not cuda:
        cmd += ["--cpu"]
    cmd += [
        "--num_processes",
        str(total),
        "--num_machines",
        str(num_machines),
        "--machine_rank",
        str(machine_rank),
        "--dynamo_backend",
        "no",
        "--mixed_precision",
        "no",
    ]
    if main_process_ip:
        cmd += ["--main_process_ip", main_process_ip]
    if main_process_port:
        cmd += ["--main_process_port", str(main_process_port)]
    cmd += list(extra_accelerate_args or [])
    cmd += ["--module", TRAINER_MODULE, str(config)]
    if disable_progress_bars:
        cmd.append("--disable_progress_bars")
    if events_stdout:
        cmd.append("--events-stdout")
    return cmd


def child_env(env: Mapping[str, str] | None, num_processes: int) -> dict[str, str]:
    """The environment of a job's child: ours plus ``env``, unbuffered output, our pid to watch, our library path."""
    child = dict(os.environ)
    child.update({k: str(v) for k, v in (env or {}).items()})
    child["PYTHONUNBUFFERED"] = "1"
    child[PARENT_PID_ENV] = str(os.getpid())
    # The child imports ltx_train_lib from the same place we did.
    paths = [p for p in child.get("PYTHONPATH", "").split(os.pathsep) if p]
    if _LIB_ROOT not in paths:
        child["PYTHONPATH"] = os.pathsep.join([_LIB_ROOT, *paths])
    child.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // max(1, num_processes))))
    return child
