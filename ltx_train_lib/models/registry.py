"""Which family a ``model_source`` belongs to, and the named versions of every family.

Families register themselves here (``register_family``); the LTX-Video family is registered on first use so that
config validation stays instant and torch-free. Families registered later are asked first, so a new family can claim
sources (its tiny alias, files it recognises) before the LTX-Video family, which takes whatever nobody claims
(any diffusers folder, single file or repo id, as before there was a second family).
"""

from __future__ import annotations

from ltx_train_lib.errors import ConfigError
from ltx_train_lib.models.family import ModelFamily, ModelVersion, ResolvedSource

_FAMILIES: list[ModelFamily] = []
DEFAULT_FAMILY = "ltxv"


def register_family(family: ModelFamily) -> ModelFamily:
    """Add (or replace, by name) a family; returns it so a module can write ``FAMILY = register_family(X())``."""
    _ensure_builtin()
    unregister_family(family.name)
    _FAMILIES.append(family)
    return family


def unregister_family(name: str) -> None:
    _FAMILIES[:] = [f for f in _FAMILIES if f.name != name]


_BUILTIN_ADDED = False


def _ensure_builtin() -> None:
    """The built-in families, added once: LTX-Video first (the fallback), then LTX-2 (asked before it)."""
    global _BUILTIN_ADDED
    if not any(f.name == DEFAULT_FAMILY for f in _FAMILIES):
        from ltx_train_lib.models.ltxv.family import LtxvFamily

        _FAMILIES.insert(0, LtxvFamily())
    if not _BUILTIN_ADDED:  # once: a test may unregister it
        _BUILTIN_ADDED = True
        from ltx_train_lib.models.ltx2.family import Ltx2Family

        if not any(f.name == Ltx2Family.name for f in _FAMILIES):
            _FAMILIES.insert(1, Ltx2Family())


def families() -> list[ModelFamily]:
    _ensure_builtin()
    return list(_FAMILIES)


def get_family(name: str) -> ModelFamily:
    for family in families():
        if family.name == name:
            return family
    known = ", ".join(f.name for f in families())
    raise ConfigError(f"unknown model family '{name}'; known families: {known}")


def family_for_source(source: str) -> ModelFamily:
    """The family that claims ``source``: the newest registered first, the LTX-Video family as the fallback."""
    source = str(source).strip()
    for family in reversed(families()):
        if family.claims(source):
            return family
    return get_family(DEFAULT_FAMILY)


def all_versions() -> dict[str, ModelVersion]:
    out: dict[str, ModelVersion] = {}
    for family in families():
        out.update(family.versions())
    return out


def tiny_sources() -> list[str]:
    return [f.tiny_source for f in families()]


def check_model_source(source: str) -> str:
    """Validate a model_source string (named versions are checked without touching the disk); returns it
    normalised (a version name in its canonical case)."""
    source = str(source).strip()
    if not source:
        raise ValueError("model_source is empty; use a named version such as LTXV_2B_0.9.6_DEV, a path, or 'tiny'")
    return family_for_source(source).check_source(source)


def resolve_source(source: str) -> ResolvedSource:
    """Classify ``source`` within its family; raises ConfigError with a fix when it is neither a version, a path nor
    a repo id."""
    try:
        source = check_model_source(source)
    except ValueError as exc:
        raise ConfigError(f"model.model_source: {exc}") from None
    return family_for_source(source).resolve(source)


def __getattr__(name: str):
    # Names older callers import: every family's versions, and the LTX-Video tiny alias / main repository.
    if name == "MODEL_VERSIONS":
        return all_versions()
    if name == "TINY_SOURCE":
        return get_family(DEFAULT_FAMILY).tiny_source
    raise AttributeError(name)
