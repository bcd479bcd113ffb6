"""The LTX-2 family's memory profile: its transformer on the meta device (no weights read), for
:mod:`ltx_train_lib.memory`.

The architecture comes from where the loader would take it, without reading a weight: the tiny model's config, the
shipped 19B config for LTX-2 named versions, a folder's ``transformer/config.json``, or a single file's header
(tensor names and shapes, or the config our exports embed). Activations use the plan's generic rule (+-50 %): no
LTX-2 calibration exists yet, and the audio stream's tokens (25 per second) are not in it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ltx_train_lib.memory.profile import GenericActivations, MemoryProfile, PlanError, main_hidden_size, meta_module


def _architecture(source) -> tuple[dict[str, Any], str]:
    from ltx_train_lib.models.ltx2.loading import (
        TRANSFORMER_CONFIG_METADATA,
        _safetensors_shapes,
        infer_transformer_config,
        transformer_config,
    )
    from ltx_train_lib.models.ltx2.tiny import TRANSFORMER_CONFIG

    if source.kind == "tiny":
        return dict(TRANSFORMER_CONFIG), "tiny-ltx2"
    if source.kind == "version":
        try:
            return transformer_config(source.version.size), source.version.name
        except Exception as exc:  # noqa: BLE001 - a 22B release: its config is in its repository only
            raise PlanError(
                f"model.model_source: the plan needs the architecture of {source.version.name}, which ships with its "
                "weights; point model_source at the downloaded transformer file (or folder) for the plan"
            ) from exc
    path = Path(source.location)
    if source.kind == "folder":
        config = path / "transformer" / "config.json"
        if not config.is_file():
            raise PlanError(f"'{path}': no transformer/config.json to read the architecture from")
        data = json.loads(config.read_text())
        return {k: v for k, v in data.items() if not k.startswith("_")}, path.name
    if source.kind == "single_file":
        shapes, metadata = _safetensors_shapes(path)  # the header only
        embedded = metadata.get(TRANSFORMER_CONFIG_METADATA)
        return (json.loads(embedded) if embedded else infer_transformer_config(shapes)), path.name
    raise PlanError(f"model.model_source '{source.location}': the plan cannot read a Hub repository's architecture "
                    "offline; use a named version, a folder or a file")


def memory_profile(family, source, *, vae_path: str | None = None) -> MemoryProfile:
    from diffusers import LTX2VideoTransformer3DModel

    config, name = _architecture(source)
    transformer = meta_module(lambda: LTX2VideoTransformer3DModel(**config))
    blocks = family.blocks(transformer)
    hidden = main_hidden_size(blocks[0])
    return MemoryProfile(
        transformer=transformer,
        activations=GenericActivations(len(blocks), hidden),
        text_tokens=family.text_max_tokens,
        architecture=f"LTX-2 {name}: {len(blocks)} blocks, hidden {hidden}",
        notes=["LTX-2 activations are a rule of thumb (+-50 %), the audio stream's not included: no calibration yet"],
    )
