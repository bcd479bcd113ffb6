"""What a run computes: per caption entry, skip it (with a reason), reuse its cached files, or recompute its
condition and/or its latents; with a reference column (IC-LoRA), pair it with its reference video.

Every sample is keyed by its media path relative to the caption file's folder, from the caption file to its cache
files: no parallel lists, so dropping a bad clip can never shift captions onto other clips' latents (the
reference's issue #59). Planning works in the run's own cache (``cache/<key>``, see :mod:`.store`): latents that
no longer match their inputs go now, so no crash can leave them looking current next to a new condition (see
:mod:`.cache`), and files another cache of the output folder already made from the same inputs are taken from it
(hard links or copies) instead of being recomputed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ltx_train_lib.buckets import Bucket, nearest_bucket
from ltx_train_lib.errors import DatasetError

from .context import RunContext
from .manifest import (
    AUDIO_LATENTS_DIR,
    CONDITIONS_DIR,
    DECODED_REFERENCE_DIR,
    LATENTS_DIR,
    REFERENCE_LATENTS_DIR,
    Manifest,
    cache_name,
    media_signature,
    sample_key,
    sample_seed,
)
from .prompts import build_prompt
from .store import reuse_condition, reuse_latents

if TYPE_CHECKING:
    from ltx_train_lib.captions_io import CaptionEntry, CaptionsReadResult
    from ltx_train_lib.media import MediaInfo

logger = logging.getLogger(__name__)


@dataclass
class Sample:
    key: str  # media path relative to the caption file's folder: the one pairing key
    media: Path
    caption: str
    prompt: str
    entry: dict[str, Any]  # the manifest entry being built for this run
    info: dict[str, Any]
    bucket: Bucket
    seed: int
    need_condition: bool = False
    need_latent: bool = False
    need_decode: bool = False
    # IC-LoRA: the reference video and what probing it found; None without a reference column.
    reference: Path | None = None
    reference_info: dict[str, Any] | None = None
    # Set while the target's frames load, so its reference gets the same frames and crop window.
    start: int = 0
    crop_rng: Any = None

    @property
    def name(self) -> Path:
        return cache_name(self.key)


class _Skip(Exception):
    """A caption entry that cannot become a sample; the message is the reason shown to the user."""


def plan_samples(read: CaptionsReadResult, manifest: Manifest, ctx: RunContext) -> list[Sample]:
    """The samples of this run, each marked with what it needs; ``manifest`` is updated (and saved) to match."""
    problems = _problems_by_media(read, ctx)
    samples: list[Sample] = []
    by_name: dict[Path, str] = {}
    seen: set[Path] = set()
    for entry in read.entries:
        key = sample_key(entry.media_path, ctx.base_dir)
        try:
            s = _plan_entry(entry, key, problems, seen, by_name, manifest, ctx)
        except _Skip as skip:
            ctx.skip(key, str(skip))
            continue
        manifest.samples[key] = s.entry
        samples.append(s)
    _forget_departed(samples, manifest, ctx)
    manifest.save()

    idle = sum(not (s.need_condition or s.need_latent or s.need_decode) for s in samples)
    ctx.total = sum(s.need_condition for s in samples) + sum(s.need_latent or s.need_decode for s in samples) + idle
    ctx.tick("checked the cache", idle)
    return samples


def _problems_by_media(read: CaptionsReadResult, ctx: RunContext) -> dict[tuple[str, Path], list[str]]:
    """The caption reader's problems by (kind, media path); entries without a usable media path are skipped now,
    under the caption file's name."""
    problems: dict[tuple[str, Path], list[str]] = {}
    for p in read.problems:
        if p.media_path is None:
            ctx.skip(f"{read.path}", p.message)
        else:
            problems.setdefault((p.kind, p.media_path), []).append(p.message)
    return problems


def _plan_entry(
    entry: CaptionEntry,
    key: str,
    problems: dict[tuple[str, Path], list[str]],
    seen: set[Path],
    by_name: dict[Path, str],
    manifest: Manifest,
    ctx: RunContext,
) -> Sample:
    """One caption entry as a sample, or ``_Skip`` with the reason."""
    media: Path = entry.media_path
    if media in seen:
        msgs = problems.get(("duplicate_media", media)) or [f"repeats an earlier entry for {key}"]
        raise _Skip(msgs.pop(0) if len(msgs) > 1 else msgs[0])
    seen.add(media)
    if media.is_dir():
        raise _Skip(f"{media} is a folder, not a video or image; point the entry at a media file")
    if ("missing_media", media) in problems or not media.exists():
        raise _Skip((problems.get(("missing_media", media)) or [f"media file {media} does not exist"])[0])
    name = cache_name(key)
    if name in by_name:
        raise _Skip(
            f"its cache name '{name}' is already used by '{by_name[name]}' (the reference names caches by the path "
            "without its suffix); rename one of the two files"
        )
    by_name[name] = key
    if not entry.caption.strip():
        raise _Skip((problems.get(("empty_caption", media)) or ["empty caption; write a caption or remove the entry"])[0])
    prompt = build_prompt(entry.caption, ctx.config.id_token, ctx.config.remove_llm_prefixes)
    if not prompt:
        raise _Skip("the caption is empty once the LLM prefix is removed; write a real caption")

    previous = manifest.samples.get(key) or {}
    if not media.is_file():
        raise _Skip("not a regular file. Point the entry at a video or image file.")
    try:
        sig, same_media, info = _probe(media, previous)
    except DatasetError as exc:
        raise _Skip(media_error_reason(exc, media)) from None
    except OSError as exc:
        raise _Skip(f"cannot be read ({exc.strerror or exc}); fix the path or the file permissions") from None
    bucket = nearest_bucket(ctx.buckets, info["width"], info["height"], info["num_frames"])
    if bucket is None:
        raise _Skip(too_short_reason(info, ctx.buckets))

    new_entry: dict[str, Any] = {"media": sig, "info": info, "caption": entry.caption, "prompt": prompt}
    s = Sample(key, media, entry.caption, prompt, new_entry, info, bucket, sample_seed(ctx.config.seed, key))
    same_reference = True
    if ctx.config.reference_column:
        old_ref = previous.get("reference") or {}
        try:
            s.reference, ref_entry = plan_reference(entry, old_ref, info, bucket, ctx)
        except DatasetError as exc:
            raise _Skip(str(exc)) from None
        s.reference_info = ref_entry["info"]
        new_entry["reference"] = ref_entry
        # Same reference bytes and its latents still on disk (the path may change: the bytes are what count).
        same_reference = (
            ref_entry["media"].get("sha256") == (old_ref.get("media") or {}).get("sha256")
            and "latent" in old_ref
            and ctx.cache.path(REFERENCE_LATENTS_DIR, key).is_file()
        )
    _decide(s, previous, same_media and same_reference, ctx)
    return s


def _probe(media: Path, previous: dict[str, Any]) -> tuple[dict[str, Any], bool, dict[str, Any]]:
    """(signature, same bytes as the manifest's record, media info): the stored info is reused for unchanged bytes,
    so an unchanged dataset is checked without opening a single container. Raises DatasetError for a file that is
    no readable media, OSError for one that cannot be read at all."""
    from ltx_train_lib.media import probe_media

    sig = media_signature(media, previous.get("media"))
    same = sig.get("sha256") == (previous.get("media") or {}).get("sha256")
    info = previous["info"] if same and previous.get("info") else _info_dict(probe_media(media))
    return sig, same, info


def _decide(s: Sample, previous: dict[str, Any], same_pixels: bool, ctx: RunContext) -> None:
    """Reuse (from this cache or another one) or recompute the condition and the latents; ``same_pixels``: the
    media (and reference) bytes match this cache's record."""
    key, cache = s.key, ctx.cache
    cond = previous.get("condition") or {}
    if cond.get("key") == ctx.condition_key(s.prompt) and cache.path(CONDITIONS_DIR, key).is_file():
        s.entry["condition"] = cond
    elif not reuse_condition(s, ctx):
        s.need_condition = True
    lat = previous.get("latent") or {}
    if (same_pixels and lat.get("key") == ctx.latent_key(s.bucket) and cache.path(LATENTS_DIR, key).is_file()
            and _audio_current(s, previous, ctx)):
        s.entry["latent"] = lat
        if "audio" in previous:
            s.entry["audio"] = previous["audio"]
        if s.reference is not None:
            s.entry["reference"]["latent"] = previous["reference"]["latent"]
    else:
        # The old latents describe other pixels or settings: remove them now, so no crash can leave them looking
        # current next to a new condition.
        cache.drop_latent(key)
        # A target and its reference are encoded together (the reference takes the target's frames and crop), so
        # a change to either recomputes both, unless another cache has both.
        s.need_latent = not reuse_latents(s, ctx)
    s.need_decode = ctx.config.decode_videos and (
        s.need_latent
        or not cache.decoded_path(key, s.bucket.frames).is_file()
        or (s.reference is not None and not cache.decoded_path(key, s.bucket.frames, DECODED_REFERENCE_DIR).is_file())
    )


def _audio_current(s: Sample, previous: dict[str, Any], ctx: RunContext) -> bool:
    """For an audio-video family: the sample's sound was encoded with its latents (or found missing then)."""
    if not ctx.family.audio_sample_rate:
        return True
    audio = previous.get("audio")
    if not isinstance(audio, dict):
        return False
    return not audio.get("frames") or ctx.cache.path(AUDIO_LATENTS_DIR, s.key).is_file()


def _forget_departed(samples: list[Sample], manifest: Manifest, ctx: RunContext) -> None:
    """Entries dropped from the dataset or skipped lose their latents now (their condition goes at the end)."""
    keep = {s.key for s in samples}
    for key in list(manifest.samples):
        if key not in keep:
            ctx.cache.drop_latent(key)
            del manifest.samples[key]
            if not any(key == k for k, _ in ctx.result.skipped):
                ctx.result.removed.append(key)


# --------------------------------------------------------------------------------------------- reference pairing


def plan_reference(
    entry: CaptionEntry, previous: dict[str, Any], info: dict[str, Any], bucket: Bucket, ctx: RunContext
) -> tuple[Path, dict[str, Any]]:
    """The entry's reference video and its manifest record. Raises DatasetError (the skip reason) when the
    reference is absent, unreadable or shorter than the frames its target is trained on."""
    from ltx_train_lib.captions_io import resolve_media_path

    column = ctx.config.reference_column
    assert column is not None
    stored = entry.extra.get(column)
    if not isinstance(stored, str) or not stored.strip():
        raise DatasetError(
            f"no reference video in column '{column}'; add one (compute_condition.py writes them) or remove the entry"
        )
    ref = resolve_media_path(stored, ctx.base_dir)
    where = f"reference video {ref}"
    if not ref.is_file():
        raise DatasetError(f"{where} does not exist; create it (e.g. compute_condition.py) or fix the '{column}' value")
    try:
        sig, same, ref_info = _probe(ref, previous)
    except DatasetError as exc:
        raise DatasetError(f"{where}: {media_error_reason(exc, ref)}") from None
    except OSError as exc:
        raise DatasetError(
            f"{where} cannot be read ({exc.strerror or exc}); fix the path or the file permissions"
        ) from None
    if ref_info["kind"] == "image" and bucket.frames > 1:
        raise DatasetError(
            f"{where} is an image but its target is trained on {bucket.frames} frames; give a video reference as "
            "long as the target"
        )
    if ref_info["num_frames"] < bucket.frames:
        raise DatasetError(
            f"{where} has {ref_info['num_frames']} frames, fewer than the {bucket.frames} its target is trained on; "
            "give a reference as long as the target"
        )
    if not same and abs(ref_info["width"] * info["height"] - ref_info["height"] * info["width"]) > 0.01 * (
        info["width"] * info["height"]
    ):
        # Both are cropped to the same bucket, but different shapes put different content under the crop.
        logger.warning(
            "%s: %dx%d has another aspect ratio than its target (%dx%d); the two crops will not line up",
            where,
            ref_info["width"],
            ref_info["height"],
            info["width"],
            info["height"],
        )
    return ref, {"path": sample_key(ref, ctx.base_dir), "media": sig, "info": ref_info}


# ----------------------------------------------------------------------------------------------------- reasons


def _info_dict(info: MediaInfo) -> dict[str, Any]:
    return {
        "kind": info.kind,
        "num_frames": int(info.num_frames),
        "fps": float(info.fps),
        "width": int(info.width),
        "height": int(info.height),
        "vfr": bool(info.variable_frame_rate),
    }


def media_error_reason(exc: Exception, media: Path) -> str:
    """The message of a media error without its leading file name (the skip list names the file already)."""
    text = str(exc)
    for prefix in (f"{media}: ", f"{media}:"):
        if text.startswith(prefix):
            return text[len(prefix) :]
    return text


def too_short_reason(info: dict[str, Any], buckets: list[Bucket]) -> str:
    """Why a clip fits no bucket, and the bucket that would take it."""
    if info["kind"] == "image":
        example = f"{buckets[0].width}x{buckets[0].height}x1"
        return (
            "an image needs a bucket with 1 frame and none was given; add one, e.g. "
            f'--resolution-buckets "{";".join(map(str, buckets))};{example}", or remove the image'
        )
    shortest = min(buckets, key=lambda b: b.frames)
    fits = max(1, (info["num_frames"] - 1) // 8 * 8 + 1)  # the longest 8k+1 count the clip can fill
    bucket = f"{shortest.width}x{shortest.height}x{fits}"
    add = f"a 1-frame bucket such as {bucket} (its first frame then trains as an image)" if fits == 1 else bucket
    return (
        f"the clip has {info['num_frames']} frames, fewer than every bucket (the shortest needs {shortest.frames}); "
        f"remove it, use a longer clip, or add {add}"
    )


__all__ = ["Sample", "media_error_reason", "plan_reference", "plan_samples", "too_short_reason"]
