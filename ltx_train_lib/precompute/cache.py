"""The files of one cache folder (``.precomputed/cache/<key>/``, in the reference's layout; the top level of
``.precomputed/`` is a published copy of one, see :mod:`.store`): where each sample's files go, how they are written
and deleted.

Invariants kept at every instant, so a crash or a Cancel never leaves a cache the trainer would misread:
- every ``.pt`` is written atomically (temp file + rename);
- a sample's condition is written before its latents, and its latents are deleted before its condition, so a
  latents file always has its condition (the trainer refuses latents without one); likewise its reference
  latents (IC-LoRA) are written before and deleted after its latents.
The write order is the run's (see :mod:`.run`); the delete order is kept here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ltx_train_lib.fileio import atomic_path

from .manifest import (
    AUDIO_LATENTS_DIR,
    CONDITIONS_DIR,
    DECODED_DIR,
    DECODED_REFERENCE_DIR,
    LATENTS_DIR,
    REFERENCE_LATENTS_DIR,
    cache_name,
)

DECODED_SUFFIXES = (".mp4", ".png")


@dataclass(frozen=True)
class CacheDir:
    """A cache folder in the reference's layout. Sample keys are media paths relative to the caption file's folder."""

    root: Path

    def path(self, folder: str, key: str, suffix: str = ".pt") -> Path:
        return self.root / folder / cache_name(key).with_suffix(suffix)

    def decoded_path(self, key: str, frames: int, folder: str = DECODED_DIR) -> Path:
        """A decoded check file: a PNG for a 1-frame bucket, else an mp4."""
        return self.path(folder, key, ".png" if frames == 1 else ".mp4")

    def drop_latent(self, key: str) -> None:
        """Delete a sample's latents, reference latents and decoded files (its condition stays)."""
        # Latents go first: a latents file must never outlive its condition or its reference latents.
        self.path(LATENTS_DIR, key).unlink(missing_ok=True)
        self.path(REFERENCE_LATENTS_DIR, key).unlink(missing_ok=True)
        self.path(AUDIO_LATENTS_DIR, key).unlink(missing_ok=True)
        for folder in (DECODED_DIR, DECODED_REFERENCE_DIR):
            for suffix in DECODED_SUFFIXES:
                self.path(folder, key, suffix).unlink(missing_ok=True)

    def sweep(self, folder: str, keep: Callable[[Path], bool], suffixes: tuple[str, ...]) -> None:
        """Delete every file of ``folder`` with one of ``suffixes`` whose path (relative to it) ``keep`` rejects."""
        root = self.root / folder
        if not root.is_dir():
            return
        for path in sorted(root.rglob("*")):
            if path.is_file() and path.suffix in suffixes and not keep(path.relative_to(root)):
                path.unlink()
        _remove_empty_dirs(root)

    def sweep_temp_files(self) -> None:
        """Temp files of a run that was killed mid-write (atomic_path names them '.<name>.<random>.tmp')."""
        for folder in (LATENTS_DIR, REFERENCE_LATENTS_DIR, AUDIO_LATENTS_DIR, CONDITIONS_DIR, DECODED_DIR,
                       DECODED_REFERENCE_DIR, "."):
            root = self.root / folder
            if root.is_dir():
                pattern = ".*.tmp" if folder == "." else "**/.*.tmp"
                for tmp in root.glob(pattern):
                    if tmp.is_file():
                        tmp.unlink(missing_ok=True)


def save_tensor(obj: dict[str, Any], target: Path) -> None:
    """``torch.save`` through a temp file, so a reader never sees half a file."""
    import torch

    with atomic_path(target) as tmp:
        torch.save(obj, tmp)


def _remove_empty_dirs(root: Path) -> None:
    for d in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            d.rmdir()


__all__ = ["CacheDir", "save_tensor"]
