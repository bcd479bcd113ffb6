"""Caches keyed by what made them, several side by side, and the current one at the top of ``.precomputed/``.

Layout of the output folder (by default ``<dataset dir>/.precomputed``)::

    latents/ conditions/ reference_latents/ decoded_videos/ decoded_reference_videos/ .manifest.json
                        the current cache: the one the last completed run made, in the reference trainer's layout.
                        This is what our trainer and the reference trainer read.
    cache/<key>/        one cache per key, each complete in the same layout with its own .manifest.json; the
                        current cache is one of them.
    .ltx_train.lock     held by a running preprocessing run (an OS lock, see ltx_train_lib.locks).

``<key>`` is ``<family>-<text encoding>-<hash>`` (:func:`.manifest.cache_key`): the model family, the VAE and
text-encoder identities, the text encoding, the buckets and the pixel settings (crop, frame selection, seed,
tiling). A run reads and writes only inside its ``cache/<key>/``; the top level changes only once the run has
completed, when it is made a copy of that folder (:func:`publish`). So:

- a run that fails (a model that cannot load, a full disk, a Cancel) leaves the current cache as it was, and
  trainable; what it finished stays in its ``cache/<key>/`` for the next try;
- switching to other settings and back finds the first cache complete in its folder: nothing is recomputed;
- a sample whose files another cache already has (the same media bytes and latent settings; the same prompt and
  text settings) takes them from there (:func:`reuse_latents`, :func:`reuse_condition`): switching only the text
  encoding recomputes the caption embeddings, not the latents.

Copies are hard links where the file system has them (NTFS, ext4, APFS, ...), so the top level and its cache share
the bytes and publishing costs one link per file; elsewhere (FAT32, exFAT) they are real copies. Symbolic links
are never used (Windows allows them only with extra rights). Files are only ever replaced by rename, never written
in place, so a file shared by two folders never changes under either.

Publishing never lets a reader pair files of different settings: the new top level is assembled in a work folder
(``.publish-<random>.tmp/``), then the folders swap by rename. The old ``latents/`` leaves first (from then on a
reader finds no latents and stops with a message), then the other folders; the manifest is replaced, the new
folders come in, and the new ``latents/`` comes last. A crash in between leaves a top level without latents; the
next run publishes again (nothing is recomputed). A top level made before caches were keyed (our manifest, but no ``cache/`` folder
for it) is first taken into ``cache/`` (:func:`adopt_view`), so switching back to its settings reuses it; one
without a manifest (made by the reference trainer) cannot be keyed and is replaced when a run completes.

Old caches are never deleted by a run: remove a ``cache/<key>`` folder you no longer need (its ``.manifest.json``
says what it was made with).
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .cache import CacheDir
from .manifest import (
    AUDIO_LATENTS_DIR,
    CONDITIONS_DIR,
    DECODED_DIR,
    DECODED_REFERENCE_DIR,
    LATENTS_DIR,
    MANIFEST_NAME,
    REFERENCE_LATENTS_DIR,
    Manifest,
)

if TYPE_CHECKING:
    from .context import RunContext
    from .plan import Sample

logger = logging.getLogger(__name__)

STORE_DIR = "cache"
DATA_FOLDERS = (LATENTS_DIR, REFERENCE_LATENTS_DIR, AUDIO_LATENTS_DIR, CONDITIONS_DIR, DECODED_DIR, DECODED_REFERENCE_DIR)
# The top level's folders leave in this order (latents first) and come in in the reverse one (latents last).
_SWAP_ORDER = (LATENTS_DIR, REFERENCE_LATENTS_DIR, AUDIO_LATENTS_DIR, DECODED_DIR, DECODED_REFERENCE_DIR, CONDITIONS_DIR)
# Work folders, each with a fresh name per use: a leftover one (a killed run, a file Windows kept open) is never
# reused, so nothing stale can be swapped in with it.
PUBLISH_TMP, RETIRED_TMP, ADOPT_TMP = ".publish", ".retired", ".adopt"


def store_root(view: Path) -> Path:
    return view / STORE_DIR


# ------------------------------------------------------------------------------------------------------------ files


def link_or_copy(src: Path, dst: Path) -> None:
    """``dst`` becomes ``src``'s bytes, atomically: a hard link where the file system allows it, else a copy."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{secrets.token_hex(4)}.tmp")
    try:
        try:
            os.link(src, tmp)
        except OSError:
            # No hard links here (FAT32, exFAT, some network shares): a copy. A real write error (disk full,
            # read-only) raises again from the copy, with its own errno.
            shutil.copy2(src, tmp)
        os.replace(tmp, dst)
    finally:
        if tmp.exists():
            tmp.unlink()


def data_files(root: Path) -> dict[str, Path]:
    """Every cached file under ``root``'s data folders, by its path relative to ``root`` ('/' separators)."""
    out: dict[str, Path] = {}
    for folder in DATA_FOLDERS:
        base = root / folder
        if base.is_dir():
            for path in base.rglob("*"):
                if path.is_file() and not path.name.startswith("."):
                    out[path.relative_to(root).as_posix()] = path
    return out


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _work_folder(parent: Path, name: str) -> Path:
    return parent / f"{name}-{secrets.token_hex(4)}.tmp"


def clean_leftovers(view: Path) -> None:
    """What a run killed while publishing or adopting left (nobody else writes here: the caller holds the lock)."""
    for parent, name in ((view, PUBLISH_TMP), (view, RETIRED_TMP), (store_root(view), ADOPT_TMP)):
        if parent.is_dir():
            for folder in parent.glob(f"{name}-*.tmp"):
                shutil.rmtree(folder, ignore_errors=True)


# ----------------------------------------------------------------------------------------------------- adoption


def adopt_view(view: Path) -> Path | None:
    """Take a top level that no ``cache/<key>`` folder holds (made before caches were keyed, or whose folder was
    deleted) into ``cache/<its key>``, so it stays reusable once another cache is published. Returns that folder."""
    manifest = Manifest.load(view / MANIFEST_NAME, quiet=True)
    if not manifest.found or not manifest.samples or not (view / LATENTS_DIR).is_dir():
        return None  # nothing of ours to keep (an empty cache, or one of the reference trainer's)
    key = manifest.cache_key
    target = store_root(view) / key
    if target.exists():
        return None
    staging = _work_folder(store_root(view), ADOPT_TMP)
    try:
        for rel, path in data_files(view).items():
            link_or_copy(path, staging / rel)
        manifest.settings = {**manifest.settings, "cache_key": key, "text_encoding": manifest.text_encoding}
        manifest.path = staging / MANIFEST_NAME
        manifest.save()
        os.replace(staging, target)  # the cache folder appears complete, or not at all
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.info("kept the current cache of %s as %s", view, target)
    return target


# ----------------------------------------------------------------------------------------------- reuse by sample


@dataclass(frozen=True)
class Sibling:
    """Another cache of the same output folder, whose files a run may take."""

    cache: CacheDir
    manifest: Manifest


def load_siblings(view: Path, own: Path) -> list[Sibling]:
    root = store_root(view)
    if not root.is_dir():
        return []
    siblings = []
    for folder in sorted(root.iterdir()):
        if folder.is_dir() and not folder.name.startswith(".") and folder.name != own.name:
            manifest = Manifest.load(folder / MANIFEST_NAME, quiet=True)
            if manifest.found and manifest.samples:
                siblings.append(Sibling(CacheDir(folder), manifest))
    return siblings


def reuse_condition(s: Sample, ctx: RunContext) -> bool:
    """Take the sample's condition from another cache that made it from the same prompt and text settings."""
    want = ctx.condition_key(s.prompt)
    for sib in ctx.siblings:
        cond = (sib.manifest.samples.get(s.key) or {}).get("condition") or {}
        src = sib.cache.path(CONDITIONS_DIR, s.key)
        if cond.get("key") == want and src.is_file():
            link_or_copy(src, ctx.cache.path(CONDITIONS_DIR, s.key))
            s.entry["condition"] = dict(cond)
            return True
    return False


def reuse_latents(s: Sample, ctx: RunContext) -> bool:
    """Take the sample's latents (and reference latents, decoded files) from another cache that encoded the same
    media bytes (and reference bytes) with the same latent settings. Reference latents are placed before the
    latents, as a run writes them (see :mod:`.cache`)."""
    want = ctx.latent_key(s.bucket)
    sha = s.entry["media"].get("sha256")
    ref_sha = ((s.entry.get("reference") or {}).get("media") or {}).get("sha256")
    for sib in ctx.siblings:
        entry = sib.manifest.samples.get(s.key) or {}
        lat = entry.get("latent") or {}
        src = sib.cache.path(LATENTS_DIR, s.key)
        if lat.get("key") != want or (entry.get("media") or {}).get("sha256") != sha or not src.is_file():
            continue
        old_ref = entry.get("reference") or {}
        ref_src = sib.cache.path(REFERENCE_LATENTS_DIR, s.key)
        if s.reference is not None:
            if (old_ref.get("media") or {}).get("sha256") != ref_sha or "latent" not in old_ref or not ref_src.is_file():
                continue
            link_or_copy(ref_src, ctx.cache.path(REFERENCE_LATENTS_DIR, s.key))
            s.entry["reference"]["latent"] = dict(old_ref["latent"])
        audio = entry.get("audio")
        audio_src = sib.cache.path(AUDIO_LATENTS_DIR, s.key)
        if ctx.family.audio_sample_rate:
            # The sibling's sound must come with its latents (a cache of the same key always has both).
            if not isinstance(audio, dict) or (audio.get("frames") and not audio_src.is_file()):
                continue
            if audio.get("frames"):
                link_or_copy(audio_src, ctx.cache.path(AUDIO_LATENTS_DIR, s.key))
            s.entry["audio"] = dict(audio)
        for folder in (DECODED_DIR, DECODED_REFERENCE_DIR) if s.reference is not None else (DECODED_DIR,):
            decoded = sib.cache.decoded_path(s.key, s.bucket.frames, folder)
            if decoded.is_file():
                link_or_copy(decoded, ctx.cache.decoded_path(s.key, s.bucket.frames, folder))
        link_or_copy(src, ctx.cache.path(LATENTS_DIR, s.key))
        s.entry["latent"] = dict(lat)
        return True
    return False


# ---------------------------------------------------------------------------------------------------- publishing


def publish(cache: CacheDir, view: Path) -> bool:
    """Make the top level of ``view`` the cache in ``cache`` (see the module docstring for the order of the
    swap). Returns False when it already was (then at most the manifest is refreshed)."""
    files = data_files(cache.root)
    if _view_is_current(cache, view, files):
        if (cache.root / MANIFEST_NAME).read_bytes() != _read_or_empty(view / MANIFEST_NAME):
            link_or_copy(cache.root / MANIFEST_NAME, view / MANIFEST_NAME)
        return False
    staging, retired = _work_folder(view, PUBLISH_TMP), _work_folder(view, RETIRED_TMP)
    try:
        for rel, src in files.items():
            link_or_copy(src, staging / rel)
        for folder in (LATENTS_DIR, CONDITIONS_DIR):
            (staging / folder).mkdir(parents=True, exist_ok=True)  # present even when empty: the swap completed
        link_or_copy(cache.root / MANIFEST_NAME, staging / MANIFEST_NAME)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)  # (a full disk while copying): the top level is untouched
        raise
    retired.mkdir(parents=True, exist_ok=True)
    for folder in _SWAP_ORDER:
        if (view / folder).exists():
            os.replace(view / folder, retired / folder)
    os.replace(staging / MANIFEST_NAME, view / MANIFEST_NAME)
    for folder in reversed(_SWAP_ORDER):
        if (staging / folder).exists():
            os.replace(staging / folder, view / folder)
    # The swap is done; what is left is only links (or copies) of files the caches keep. A file another process
    # holds open (Windows) stays until the next run's clean_leftovers.
    shutil.rmtree(retired, ignore_errors=True)
    shutil.rmtree(staging, ignore_errors=True)
    return True


def _read_or_empty(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def _view_is_current(cache: CacheDir, view: Path, files: dict[str, Path]) -> bool:
    """The top level holds exactly ``cache``'s files: the same files (hard links), or copies of the same size made
    from the same manifest entries."""
    if not (view / LATENTS_DIR).is_dir() or not (view / CONDITIONS_DIR).is_dir() or set(data_files(view)) != set(files):
        return False
    if all(_same_file(src, view / rel) for rel, src in files.items()):
        return True
    if any(src.stat().st_size != (view / rel).stat().st_size for rel, src in files.items()):
        return False
    ours, theirs = Manifest.load(cache.root / MANIFEST_NAME, quiet=True), Manifest.load(view / MANIFEST_NAME, quiet=True)
    return theirs.found and theirs.samples == ours.samples and theirs.cache_key == ours.cache_key


__all__ = [
    "DATA_FOLDERS",
    "STORE_DIR",
    "Sibling",
    "adopt_view",
    "clean_leftovers",
    "data_files",
    "link_or_copy",
    "load_siblings",
    "publish",
    "reuse_condition",
    "reuse_latents",
    "store_root",
]
