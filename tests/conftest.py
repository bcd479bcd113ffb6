"""Shared fixtures: the tiny model is built once per session into a cache shared by every test process."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Everything offline: no test may reach the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("LTX_TRAIN_CACHE", str(Path(__file__).resolve().parents[1] / ".venv" / "ltx_cache"))
os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    from ltx_train_lib.models.ltxv.tiny import tiny_model_dir as build

    return build()


def make_precomputed(root: Path, shapes: list[tuple[int, int, int]], channels: int = 8, text_dim: int = 32, seed: int = 0, fps: float = 24.0) -> Path:
    """A `.precomputed` folder with random latents/conditions in the reference's schema (one sample per shape)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    pre = root / ".precomputed"
    for i, (f, h, w) in enumerate(shapes):
        rel = Path(f"clip_{i:03d}.mp4.pt")
        (pre / "latents").mkdir(parents=True, exist_ok=True)
        (pre / "conditions").mkdir(parents=True, exist_ok=True)
        torch.save(
            {"latents": torch.randn(f * h * w, channels, generator=g).to(torch.bfloat16), "num_frames": f, "height": h, "width": w, "fps": fps},
            pre / "latents" / rel,
        )
        mask = torch.zeros(256, dtype=torch.bool)
        mask[: 4 + i % 5] = True
        torch.save({"prompt_embeds": torch.randn(256, text_dim, generator=g).to(torch.bfloat16), "prompt_attention_mask": mask}, pre / "conditions" / rel)
    return root


@pytest.fixture
def precomputed_dataset(tmp_path: Path) -> Path:
    # Two buckets: 4 clips of 2x2x2 latents (64x64x9) and 2 clips of 1x2x3 latents (96x64x1 images).
    return make_precomputed(tmp_path / "dataset", [(2, 2, 2)] * 4 + [(1, 2, 3)] * 2)


def tiny_config_dict(data_root: Path, output_dir: Path, **overrides) -> dict:
    cfg = {
        "model": {"model_source": "tiny", "training_mode": "lora"},
        "lora": {"rank": 4, "alpha": 4, "target_modules": ["to_q", "to_k", "to_v", "to_out.0"]},
        "optimization": {"learning_rate": 1e-3, "steps": 6, "batch_size": 2, "scheduler_type": "constant"},
        "acceleration": {"mixed_precision_mode": "no", "compile_with_inductor": False},
        "data": {"preprocessed_data_root": str(data_root), "num_dataloader_workers": 0},
        "validation": {"prompts": [], "interval": None},
        "checkpoints": {"interval": 2, "keep_last_n": 2},
        "seed": 7,
        "output_dir": str(output_dir),
    }
    for dotted, value in overrides.items():
        node = cfg
        parts = dotted.split("__")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return cfg
