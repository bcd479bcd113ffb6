"""What each cached file was made from: sample keys, cache names, media signatures, settings keys, the manifest,
and the lock that keeps two runs off one cache folder.

The folder names and the ``<media path>.pt`` naming are the reference trainer's (reference/ltx-video-trainer.md
§3.2-3.3), so a cache made here loads in the reference trainer and vice versa. The keys hash exactly what a cached
file depends on; changing what goes into one invalidates every cache made before, so the inputs stay as they are.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ltx_train_lib.buckets import Bucket
from ltx_train_lib.errors import DatasetError
from ltx_train_lib.fileio import write_text_atomic

from . import model_io

logger = logging.getLogger(__name__)

PRECOMPUTED_DIR = ".precomputed"
LATENTS_DIR = "latents"
CONDITIONS_DIR = "conditions"
REFERENCE_LATENTS_DIR = "reference_latents"  # the reference trainer's folder name (its config default differs, §11.8)
DECODED_DIR = "decoded_videos"
DECODED_REFERENCE_DIR = "decoded_reference_videos"
MANIFEST_NAME = ".manifest.json"
LOCK_NAME = ".lock"
# Bump when what a cached file means changes (it invalidates every entry of older manifests).
MANIFEST_VERSION = 1
MANIFEST_SAVE_INTERVAL_S = 5.0


# ------------------------------------------------------------------------------------------------------ sample keys


def cache_name(key: str) -> Path:
    """``clips/a.mp4`` -> ``clips/a.pt``: the reference's naming (suffix replaced), so its trainer finds the files."""
    return Path(key).with_suffix(".pt")


def sample_key(media: Path, base_dir: Path) -> str:
    """The media path relative to the caption file's folder ('/' separators).

    Media outside that folder gets ``_external/<hash of its folder>/<name>``: a relative path with '..' would point
    outside the cache.
    """
    try:
        return media.relative_to(base_dir).as_posix()
    except ValueError:
        digest = hashlib.sha256(str(media.parent).encode()).hexdigest()[:10]
        return f"_external/{digest}/{media.name}"


def sample_seed(seed: int, key: str) -> int:
    """A per-sample seed that depends only on the run seed and the media path: stable across runs and batches."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:8], "little") & (2**63 - 1)


# ------------------------------------------------------------------------------------------------------- signatures


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def media_signature(path: Path, previous: dict[str, Any] | None) -> dict[str, Any]:
    """Size, mtime and sha256 of a media file. Size and mtime unchanged: the stored hash is trusted (fast path);
    otherwise the bytes are hashed, so a touched but identical file keeps its cache."""
    st = path.stat()
    if previous and previous.get("size") == st.st_size and previous.get("mtime_ns") == st.st_mtime_ns:
        if previous.get("sha256"):
            return dict(previous)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": file_sha256(path)}


def settings_key(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def condition_key(prompt: str, text_id: str) -> str:
    """What a condition file depends on: the embedded prompt and the text encoder (and its token count)."""
    return settings_key({"prompt": prompt, "text_encoder": text_id, "max_tokens": model_io.TEXT_MAX_TOKENS})


def latent_key(
    bucket: Bucket, *, vae_id: str, reshape_mode: str, frame_selection: str, seed: int, vae_tiling: bool
) -> str:
    """What a latents file depends on besides the media bytes (compared separately): the bucket, the VAE and every
    setting that changes which pixels are encoded or how."""
    return settings_key(
        {
            "bucket": str(bucket),
            "vae": vae_id,
            "reshape_mode": reshape_mode,
            "frame_selection": frame_selection,
            "seed": seed,
            "vae_tiling": vae_tiling,
        }
    )


# --------------------------------------------------------------------------------------------------------- manifest


class Manifest:
    """``.manifest.json``: per sample, what its cached files were made from. Written atomically."""

    def __init__(self, path: Path, samples: dict[str, dict[str, Any]] | None = None) -> None:
        self.path = path
        self.samples: dict[str, dict[str, Any]] = samples or {}
        self.settings: dict[str, Any] = {}
        self._saved_at = 0.0

    @classmethod
    def load(cls, path: Path) -> Manifest:
        if not path.is_file():
            return cls(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("version") != MANIFEST_VERSION or not isinstance(data.get("samples"), dict):
                raise ValueError(f"version {data.get('version')!r}")
        except (OSError, ValueError, AttributeError) as exc:
            # Unreadable or from another version: start afresh (everything is recomputed, nothing is trusted).
            logger.warning("%s: ignoring the cache manifest (%s); every sample will be recomputed", path, exc)
            return cls(path)
        return cls(path, data["samples"])

    def save(self) -> None:
        data = {
            "version": MANIFEST_VERSION,
            "tool": "ltx_train_lib",
            "settings": self.settings,
            "samples": self.samples,
        }
        write_text_atomic(self.path, json.dumps(data, indent=1, sort_keys=True) + "\n")
        self._saved_at = time.monotonic()

    def save_now_and_then(self) -> None:
        """Save at most every few seconds: a crash then costs little recomputation and saving stays cheap."""
        if time.monotonic() - self._saved_at >= MANIFEST_SAVE_INTERVAL_S:
            self.save()


# ------------------------------------------------------------------------------------------------------------- lock


@contextlib.contextmanager
def output_lock(output_dir: Path) -> Iterator[None]:
    """One run per cache folder: two runs would delete each other's files as stale."""
    lock = output_dir / LOCK_NAME
    me = f"{socket.gethostname()}:{os.getpid()}"
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            owner = lock.read_text(errors="replace").strip() if lock.is_file() else ""
            host, _, pid = owner.partition(":")
            if host == socket.gethostname() and pid.isdigit() and not _pid_alive(int(pid)):
                lock.unlink(missing_ok=True)  # left by a run that was killed
                continue
            raise DatasetError(
                f"{output_dir}: another preprocessing run ({owner or 'unknown'}) is writing this cache. Wait for it "
                f"to finish; if no run is active, delete {lock}."
            ) from None
        with os.fdopen(fd, "w") as fh:
            fh.write(me)
        break
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


__all__ = [
    "CONDITIONS_DIR",
    "DECODED_DIR",
    "DECODED_REFERENCE_DIR",
    "LATENTS_DIR",
    "LOCK_NAME",
    "MANIFEST_NAME",
    "MANIFEST_VERSION",
    "PRECOMPUTED_DIR",
    "REFERENCE_LATENTS_DIR",
    "Manifest",
    "cache_name",
    "condition_key",
    "file_sha256",
    "latent_key",
    "media_signature",
    "output_lock",
    "sample_key",
    "sample_seed",
    "settings_key",
]
