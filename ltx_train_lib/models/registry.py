"""Named LTX-Video versions and how a ``model_source`` string is resolved.

This module is pure Python (no torch import) so configs validate instantly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from ltx_train_lib.errors import ConfigError

HF_MAIN_REPO = "Lightricks/LTX-Video"
TINY_SOURCE = "tiny"


@dataclass(frozen=True)
class ModelVersion:
    name: str
    size: str  # "2B" or "13B": selects the transformer architecture
    single_file: str  # file name in Lightricks/LTX-Video
    hf_repo: str | None  # diffusers-layout repo, where one exists
    distilled: bool = False
    family: str = "ltxv"

    @property
    def single_file_url(self) -> str:
        return f"https://huggingface.co/{HF_MAIN_REPO}/blob/main/{self.single_file}"


_VERSIONS = [
    ModelVersion("LTXV_2B_0.9.0", "2B", "ltx-video-2b-v0.9.safetensors", "Lightricks/LTX-Video"),
    ModelVersion("LTXV_2B_0.9.1", "2B", "ltx-video-2b-v0.9.1.safetensors", "Lightricks/LTX-Video-0.9.1"),
    ModelVersion("LTXV_2B_0.9.5", "2B", "ltx-video-2b-v0.9.5.safetensors", "Lightricks/LTX-Video-0.9.5"),
    ModelVersion("LTXV_2B_0.9.6_DEV", "2B", "ltxv-2b-0.9.6-dev-04-25.safetensors", None),
    ModelVersion("LTXV_2B_0.9.6_DISTILLED", "2B", "ltxv-2b-0.9.6-distilled-04-25.safetensors", None, distilled=True),
    ModelVersion("LTXV_2B_0.9.8_DISTILLED", "2B", "ltxv-2b-0.9.8-distilled.safetensors", None, distilled=True),
    ModelVersion("LTXV_13B_097_DEV", "13B", "ltxv-13b-0.9.7-dev.safetensors", "Lightricks/LTX-Video-0.9.7-dev"),
    ModelVersion("LTXV_13B_097_DISTILLED", "13B", "ltxv-13b-0.9.7-distilled.safetensors", "Lightricks/LTX-Video-0.9.7-distilled", distilled=True),
    ModelVersion("LTXV_13B_098_DEV", "13B", "ltxv-13b-0.9.8-dev.safetensors", None),
    ModelVersion("LTXV_13B_098_DISTILLED", "13B", "ltxv-13b-0.9.8-distilled.safetensors", None, distilled=True),
]
MODEL_VERSIONS: dict[str, ModelVersion] = {v.name: v for v in _VERSIONS}
LtxvModelVersion = Enum("LtxvModelVersion", {v.name.replace(".", "_"): v.name for v in _VERSIONS}, type=str)

_VERSION_LIKE = re.compile(r"^LTXV?_\d", re.IGNORECASE)


def check_model_source(source: str) -> str:
    """Validate a model_source string without touching the disk for named versions."""
    source = source.strip()
    if not source:
        raise ValueError("model_source is empty; use a named version such as LTXV_2B_0.9.6_DEV, a path, or 'tiny'")
    if source in MODEL_VERSIONS or source == TINY_SOURCE:
        return source
    upper = {k.upper(): k for k in MODEL_VERSIONS}
    if source.upper() in upper:
        return upper[source.upper()]
    if _VERSION_LIKE.match(source) and not Path(source).exists():
        known = ", ".join(MODEL_VERSIONS)
        raise ValueError(f"unknown model version '{source}'; known versions: {known}; or give a path / Hugging Face repo id")
    return source


@dataclass(frozen=True)
class ResolvedSource:
    kind: str  # "tiny" | "version" | "folder" | "single_file" | "hub"
    location: str  # path, repo id or version name
    version: ModelVersion | None = None

    @property
    def label(self) -> str:
        if self.kind == "tiny":
            return "tiny (random weights: for tests and demos only, not a real model)"
        return self.location


_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def resolve_source(source: str) -> ResolvedSource:
    """Classify ``source``; raises ConfigError with a fix when it is neither a version, a path nor a repo id."""
    source = check_model_source(source)
    if source == TINY_SOURCE:
        return ResolvedSource("tiny", source)
    if source in MODEL_VERSIONS:
        return ResolvedSource("version", source, MODEL_VERSIONS[source])
    path = Path(source).expanduser()
    if path.is_dir():
        return ResolvedSource("folder", str(path.resolve()))
    if path.suffix in (".safetensors", ".sft", ".ckpt", ".pt"):
        if not path.is_file():
            raise ConfigError(f"model.model_source: file '{source}' does not exist; check the path")
        return ResolvedSource("single_file", str(path.resolve()))
    if _REPO_ID.match(source) and not source.startswith((".", "/", "~")):
        return ResolvedSource("hub", source)
    raise ConfigError(
        f"model.model_source: '{source}' is neither a named version, an existing folder or .safetensors file, "
        "nor a Hugging Face repo id ('owner/name')"
    )
