"""Loading any model source: the registry finds the family, the family loads the components.

Local sources never touch the network. Remote sources go through huggingface_hub's cache; when they cannot be
fetched the error says which file was needed and how to provide it locally.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ltx_train_lib.errors import ModelLoadError
from ltx_train_lib.models.family import ModelComponents
from ltx_train_lib.models.registry import families, get_family, resolve_source

ALL_COMPONENTS = ("transformer", "vae", "text_encoder", "tokenizer", "scheduler")


def load_components(
    model_source: str,
    components: Sequence[str] | set[str] = ALL_COMPONENTS,
    *,
    transformer_dtype=None,
    vae_dtype=None,
    text_encoder_dtype=None,
    text_encoder_path: str | None = None,
    tokenizer_path: str | None = None,
    vae_path: str | None = None,
    audio_vae_path: str | None = None,
) -> ModelComponents:
    """Load the requested components. Dtypes default to float32 (callers pick bf16 for LoRA training on GPU)."""
    import torch

    source = resolve_source(model_source)
    dtypes = {
        "transformer": transformer_dtype or torch.float32,
        "vae": vae_dtype or torch.float32,
        "text_encoder": text_encoder_dtype or torch.float32,
    }
    overrides = {"text_encoder": text_encoder_path, "tokenizer": tokenizer_path, "vae": vae_path,
                 "audio_vae": audio_vae_path}
    return get_family(source.family).load_components(source, tuple(components), dtypes=dtypes, overrides=overrides)


def build_random_transformer(size: str, dtype: Any = None, family: str | None = None):
    """A family's real architecture of ``size`` (e.g. "2B", "13B") with random weights: no download."""
    if family is not None:
        return get_family(family).build_random_transformer(size, dtype)
    errors = []
    for candidate in families():
        try:
            return candidate.build_random_transformer(size, dtype)
        except ModelLoadError as exc:  # this family has no such size: ask the next
            errors.append(f"{candidate.name}: {exc}")
    raise ModelLoadError(f"no model family has an architecture named '{size}' ({'; '.join(errors)})")
