"""What each cached file was made from: sample keys, cache names, media signatures, settings keys, the key of a
whole cache (:func:`cache_key`, which names its folder under ``.precomputed/cache/``), the manifest, and the lock
that keeps two runs off one cache folder.

The folder names and the ``<media path>.pt`` naming are the reference trainer's (reference/ltx-video-trainer.md
§3.2-3.3), so a cache made here loads in the reference trainer and vice versa. The keys hash exactly what a cached
file depends on; changing what goes into one invalidates every cache made before, so the inputs stay as they are
(a condition made with the ``reference`` text encoding keeps the key it had before text encodings existed).

A manifest records the cache's ``text_encoding``; :func:`cache_text_encoding` reads it for the trainer. Manifests
written before the setting existed have none: those conditions were made without the mask, i.e. ``reference``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ltx_train_lib import locks
from ltx_train_lib.buckets import Bucket
from ltx_train_lib.errors import DatasetError
from ltx_train_lib.fileio import write_text_atomic

from . import model_io

logger = logging.getLogger(__name__)

PRECOMPUTED_DIR = ".precomputed"
LATENTS_DIR = "latents"
CONDITIONS_DIR = "conditions"
AUDIO_LATENTS_DIR = "audio_latents"  # LTX-2: each clip's sound through the audio VAE (same relative names)
REFERENCE_LATENTS_DIR = "reference_latents"  # the reference trainer's folder name (its config default differs, §11.8)
DECODED_DIR = "decoded_videos"
DECODED_REFERENCE_DIR = "decoded_reference_videos"
MANIFEST_NAME = ".manifest.json"
LOCK_NAME = locks.LOCK_NAME  # in the output folder; an OS lock, freed when its process ends (see ltx_train_lib.locks)
# What conditions made before the text encoding was a setting are (the reference's unmasked T5).
LEGACY_TEXT_ENCODING = "reference"
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


def condition_key(prompt: str, text_id: str, text_encoding: str = LEGACY_TEXT_ENCODING) -> str:
    """What a condition file depends on: the embedded prompt, the text encoder (and its token count) and the text
    encoding. The ``reference`` encoding adds nothing to the key, so conditions made before the setting existed
    (all of them unmasked) stay valid as ``reference`` ones."""
    inputs: dict[str, Any] = {"prompt": prompt, "text_encoder": text_id, "max_tokens": model_io.TEXT_MAX_TOKENS}
    if text_encoding != LEGACY_TEXT_ENCODING:
        inputs["text_encoding"] = text_encoding
    return settings_key(inputs)


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


# What names a whole cache: the settings of the run that the files of every sample depend on. The prompt settings
# (trigger word, prefix removal) and the reference column are not among them: they change single samples' files.
CACHE_KEY_SETTINGS = ("family", "vae", "text_encoder", "text_encoding", "buckets", "reshape_mode", "frame_selection",
                      "seed", "vae_tiling")


def cache_key(settings: dict[str, Any]) -> str:
    """The folder name of a cache under ``.precomputed/cache/``: ``<family>-<text encoding>-<hash>`` of the model
    family, the VAE and text-encoder identities, the text encoding, the buckets and the pixel settings.

    ``settings`` is a manifest's ``settings`` (:meth:`RunContext.manifest_settings`); the ones of a manifest
    written before families and text encodings were recorded give their defaults (``ltxv``, ``reference``)."""
    values = {name: settings.get(name) for name in CACHE_KEY_SETTINGS}
    if settings.get("audio"):  # audio-video families only: video-only caches keep the keys they always had
        values["audio"] = settings["audio"]
    values["family"] = values["family"] or model_io.DEFAULT_FAMILY
    values["text_encoding"] = values["text_encoding"] or LEGACY_TEXT_ENCODING
    values["buckets"] = sorted(values["buckets"] or [])
    return f"{values['family']}-{values['text_encoding']}-{settings_key(values)[:12]}"


# --------------------------------------------------------------------------------------------------------- manifest


class Manifest:
    """``.manifest.json``: the settings of the cache (its key, its text encoding) and, per sample, what its cached
    files were made from. Written atomically."""

    def __init__(
        self, path: Path, samples: dict[str, dict[str, Any]] | None = None, settings: dict[str, Any] | None = None
    ) -> None:
        self.path = path
        self.samples: dict[str, dict[str, Any]] = samples or {}
        self.settings: dict[str, Any] = settings or {}
        self.found = False  # read from a file of this version (not started afresh)
        self._saved_at = 0.0

    @classmethod
    def load(cls, path: Path, *, quiet: bool = False) -> Manifest:
        if not path.is_file():
            return cls(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("version") != MANIFEST_VERSION or not isinstance(data.get("samples"), dict):
                raise ValueError(f"version {data.get('version')!r}")
        except (OSError, ValueError, AttributeError) as exc:
            # Unreadable or from another version: start afresh (everything is recomputed, nothing is trusted).
            if not quiet:
                logger.warning("%s: ignoring the cache manifest (%s); every sample will be recomputed", path, exc)
            return cls(path)
        settings = data.get("settings") if isinstance(data.get("settings"), dict) else {}
        manifest = cls(path, data["samples"], settings)
        manifest.found = True
        return manifest

    @property
    def text_encoding(self) -> str:
        return str(self.settings.get("text_encoding") or LEGACY_TEXT_ENCODING)

    @property
    def cache_key(self) -> str:
        return str(self.settings.get("cache_key") or cache_key(self.settings))

    def save(self) -> None:
        data = {
            "version": MANIFEST_VERSION,
            "tool": "ltx_train_lib",
            "settings": self.settings,
            "text_encoding": self.text_encoding,  # also at the top, for readers that look for nothing else
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
    """One run per output folder (its caches under ``cache/`` included): two runs would delete each other's files
    as stale. The lock is the operating system's (:func:`ltx_train_lib.locks.folder_lock`): it ends with its
    process however that ends, so a killed run leaves nothing to clean up."""
    try:
        with locks.folder_lock(output_dir, "preprocessing run"):
            yield
    except locks.FolderBusy as busy:
        raise DatasetError(
            f"{output_dir}: another {locks.describe_owner(busy.owner)} is writing this cache. Wait for it to finish "
            "or stop it (the lock ends with that process), or give another output folder."
        ) from None


# ------------------------------------------------------------------------------------------------------ for readers


def cache_text_encoding(root: Path) -> str | None:
    """The text encoding of the conditions in the cache folder ``root`` (a ``.precomputed`` folder, or one of its
    ``cache/<key>`` folders), from its manifest; None when it has no manifest of ours (a cache made by the reference
    trainer, whose conditions are unmasked, or one whose manifest cannot be read)."""
    manifest = Manifest.load(root / MANIFEST_NAME, quiet=True)
    return manifest.text_encoding if manifest.found else None


__all__ = [
    "CONDITIONS_DIR",
    "DECODED_DIR",
    "DECODED_REFERENCE_DIR",
    "AUDIO_LATENTS_DIR",
    "LATENTS_DIR",
    "LOCK_NAME",
    "LEGACY_TEXT_ENCODING",
    "MANIFEST_NAME",
    "MANIFEST_VERSION",
    "PRECOMPUTED_DIR",
    "REFERENCE_LATENTS_DIR",
    "Manifest",
    "cache_key",
    "cache_name",
    "cache_text_encoding",
    "condition_key",
    "file_sha256",
    "latent_key",
    "media_signature",
    "output_lock",
    "sample_key",
    "sample_seed",
    "settings_key",
]
