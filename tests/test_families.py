"""The model-family seam: a second family is an addition (a few lines), not a rewrite of the trainer.

A throwaway family registers itself, claims its own tiny source, and trains through the real trainer, writing the
real outputs; nothing outside the family changes. The generic modules are checked to import no family package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from safetensors import safe_open

from ltx_train_lib.config import config_from_dict
from ltx_train_lib.models.family import ResolvedSource
from ltx_train_lib.models.ltxv.family import LtxvFamily
from ltx_train_lib.models.registry import family_for_source, register_family, resolve_source, unregister_family
from ltx_train_lib.training.trainer import Trainer
from tests.conftest import make_precomputed, tiny_config_dict

REPO = Path(__file__).resolve().parents[1]


class ThrowawayFamily(LtxvFamily):
    """A second family in a few lines: its own name and tiny source, LTX-Video's components, a counting forward."""

    name = "throwaway"
    display_name = "Throwaway (test)"
    tiny_source = "tiny-throwaway"

    def __init__(self) -> None:
        self.forward_shapes: list[tuple[int, int, int]] = []

    def claims(self, source: str) -> bool:
        return source == self.tiny_source

    def check_source(self, source: str) -> str:
        return source

    def resolve(self, source: str) -> ResolvedSource:
        return ResolvedSource("tiny", source, family=self.name)

    def predict(self, model, inputs, *, device, dtype):
        self.forward_shapes.append(inputs.latent_shape)
        return super().predict(model, inputs, device=device, dtype=dtype)


@pytest.fixture
def throwaway():
    family = register_family(ThrowawayFamily())
    yield family
    unregister_family(family.name)


def test_a_registered_family_claims_its_sources_and_trains_through_the_real_trainer(tmp_path: Path, throwaway, tiny_model_dir) -> None:
    assert family_for_source("tiny-throwaway") is throwaway
    assert family_for_source("tiny").name == "ltxv" and family_for_source("LTXV_2B_0.9.6_DEV").name == "ltxv"
    assert resolve_source("tiny-throwaway").family == "throwaway"

    root = make_precomputed(tmp_path / "ds", [(2, 2, 2)] * 2)
    out = tmp_path / "out"
    cfg = config_from_dict(tiny_config_dict(root, out, model__model_source="tiny-throwaway", optimization__steps=1))
    result = Trainer(cfg).train()

    assert result.status == "done" and result.step == 1
    assert throwaway.forward_shapes == [(2, 2, 2)]  # the one training forward went through the family
    with safe_open(str(out / "lora_weights_comfy.safetensors"), framework="pt") as fh:
        meta = fh.metadata()
        assert meta["model_family"] == "throwaway" and meta["base_model"].startswith("tiny-throwaway")
        assert all(k.startswith("diffusion_model.") for k in fh.keys())


def test_after_unregistering_the_source_is_no_longer_claimed(throwaway) -> None:
    unregister_family(throwaway.name)
    assert family_for_source("tiny-throwaway").name == "ltxv"  # the fallback family takes unclaimed sources
    register_family(throwaway)


# Generic modules: they ask the family (through the registry) and never import a family package.
GENERIC = ["training", "precompute", "hub", "jobs", "export.py", "data.py", "buckets.py", "events.py", "config.py"]
FAMILY_CLASSES = ("LTXVideoTransformer3DModel", "AutoencoderKLLTXVideo", "LTXPipeline", "T5EncoderModel")


def _python_files(rel: str) -> list[Path]:
    path = REPO / "ltx_train_lib" / rel
    return sorted(path.rglob("*.py")) if path.is_dir() else [path] if path.exists() else []


def test_generic_modules_import_no_family_package() -> None:
    offenders = []
    for rel in GENERIC:
        for file in _python_files(rel):
            for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ltx_train_lib.models."):
                    if node.module.split(".")[2] not in ("family", "registry", "loader"):
                        offenders.append(f"{file.relative_to(REPO)}:{node.lineno} imports {node.module}")
    assert not offenders, "\n".join(offenders)


def test_family_classes_are_named_only_inside_their_family_package() -> None:
    outside = [
        f"{file.relative_to(REPO)}: {name}"
        for file in (REPO / "ltx_train_lib").rglob("*.py")
        if "models/ltxv" not in file.as_posix()
        for name in FAMILY_CLASSES
        if name in file.read_text(encoding="utf-8")
    ]
    assert not outside, "\n".join(outside)
