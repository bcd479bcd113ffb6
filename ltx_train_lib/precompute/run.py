"""Running a preprocessing run: plan (:mod:`.plan`), then the text phase (T5 over the captions that changed), the
video phase (VAE over the clips that changed, optional decode), then the finish: record what is complete, sweep
every file that belongs to no current sample, and publish the run's cache as the current one.

A run works in its own cache folder, ``<output folder>/cache/<key>`` (see :mod:`.store`): the top level of the
output folder, which the trainers read, changes only once the run has completed, so a failed run (a model that
cannot load, a full disk, a Cancel) leaves the previous cache as it was. Before anything is written the output
folder is checked (``check_writable_dir``) and locked; an OS error while writing becomes one ``OutputError``
naming the folder, the problem and the fix.

Order of writes, so a crash or a Cancel never leaves a cache the trainer would misread (see :mod:`.cache`): every
condition is written before any latents (the text phase runs first), reference latents before their target's
latents, and the manifest only records a file once it is on disk, so the manifest can lag behind the files (costing
a recompute) but never claims a file is current when it is not. At the end of a completed run, latents and
condition (and reference latents, with a reference column) are all present or all absent for every sample. A run
without a reference column removes reference latents: they could no longer be trusted to match their targets.

Model code is reached only through :mod:`.model_io`, looked up at call time (``model_io.encode_latents``), so a
test or another model family can stand in for any one function.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ltx_train_lib.buckets import Bucket
from ltx_train_lib.errors import ConfigError, DatasetError
from ltx_train_lib.fileio import check_writable_dir, translate_write_errors

from . import model_io, store
from .audio import encode_audio
from .cache import save_tensor
from .config import PrecomputeConfig, config_defaults
from .context import PreprocessResult, ProgressFn, RunContext, prepare
from .frames import load_frames, load_reference_frames
from .manifest import (
    AUDIO_LATENTS_DIR,
    CONDITIONS_DIR,
    DECODED_DIR,
    DECODED_REFERENCE_DIR,
    LATENTS_DIR,
    MANIFEST_NAME,
    REFERENCE_LATENTS_DIR,
    Manifest,
    cache_name,
    output_lock,
    sample_seed,
)
from .plan import Sample, media_error_reason, plan_samples

if TYPE_CHECKING:
    import torch

    from ltx_train_lib.captions_io import CaptionsReadResult

logger = logging.getLogger(__name__)

# The keyword defaults below are the schema's, so the two cannot drift apart.
_D = config_defaults()


def preprocess_dataset(
    dataset_file: str | Path | PrecomputeConfig,
    resolution_buckets: str | Sequence[str] | Sequence[Bucket] | None = None,
    *,
    output_dir: str | Path | None = _D["output_dir"],
    model_source: str = _D["model_source"],
    id_token: str | None = _D["id_token"],
    remove_llm_prefixes: bool = _D["remove_llm_prefixes"],
    text_encoding: str = _D["text_encoding"],
    decode_videos: bool = _D["decode_videos"],
    vae_tiling: bool = _D["vae_tiling"],
    reshape_mode: str = _D["reshape_mode"],
    frame_selection: str = _D["frame_selection"],
    caption_column: str = _D["caption_column"],
    media_column: str = _D["media_column"],
    reference_column: str | None = _D["reference_column"],
    batch_size: int = _D["batch_size"],
    device: str | None = _D["device"],
    load_text_encoder_in_8bit: bool = _D["load_text_encoder_in_8bit"],
    seed: int = _D["seed"],
    progress: ProgressFn | None = None,
    text_encoder_path: str | None = _D["text_encoder_path"],
    tokenizer_path: str | None = _D["tokenizer_path"],
    vae_path: str | None = _D["vae_path"],
    audio_vae_path: str | None = _D["audio_vae_path"],
) -> PreprocessResult:
    """Compute (or reuse) the text embeddings and VAE latents of every captioned media file.

    Call it with the options as keywords (each is a :class:`PrecomputeConfig` field, described there), or with a
    ``PrecomputeConfig`` as the only argument besides ``progress``.

    Only samples whose inputs changed are recomputed: the condition when the prompt (caption, trigger word, prefix
    removal), the text encoder or the text encoding changed; the latents when the media bytes, the assigned bucket,
    the VAE or the crop/frame settings changed. Caches of other settings are kept side by side (see
    :mod:`.store`): switching back to settings used before recomputes nothing. Bad inputs are skipped and listed
    in ``result.skipped``; only a problem with the whole run (no caption file, bad buckets, a model that cannot
    load, an output folder that cannot be written) raises an ``LtxTrainError``, and then the current cache is left
    as it was.

    ``reference_column`` (IC-LoRA): each entry's reference video, from that column, is encoded at its target's
    bucket, frames and crop into ``reference_latents/``; an entry without a usable reference is skipped. The
    reference is re-encoded (with its target) when its bytes change.
    """
    options = {
        "dataset_file": dataset_file,
        "resolution_buckets": resolution_buckets,
        "output_dir": output_dir,
        "model_source": model_source,
        "id_token": id_token,
        "remove_llm_prefixes": remove_llm_prefixes,
        "text_encoding": text_encoding,
        "decode_videos": decode_videos,
        "vae_tiling": vae_tiling,
        "reshape_mode": reshape_mode,
        "frame_selection": frame_selection,
        "caption_column": caption_column,
        "media_column": media_column,
        "reference_column": reference_column,
        "batch_size": batch_size,
        "device": device,
        "load_text_encoder_in_8bit": load_text_encoder_in_8bit,
        "seed": seed,
        "text_encoder_path": text_encoder_path,
        "tokenizer_path": tokenizer_path,
        "vae_path": vae_path,
        "audio_vae_path": audio_vae_path,
    }
    if isinstance(dataset_file, PrecomputeConfig):
        given = [k for k, v in options.items() if k not in ("dataset_file", "resolution_buckets") and v != _D[k]]
        if resolution_buckets is not None:
            given.insert(0, "resolution_buckets")
        if given:
            raise ConfigError(
                f"preprocess_dataset: got a PrecomputeConfig and also {', '.join(given)}; set them in the config "
                "(config.model_copy(update={...})) or pass every option as a keyword, not both"
            )
        config = dataset_file
    else:
        if resolution_buckets is None:
            del options["resolution_buckets"]  # reported as missing, with what to give
        config = PrecomputeConfig.from_options(options)
    return run_precompute(config, progress)


_KEPT_HINT = "The cache made before is kept as it was; run again once this is fixed (finished files are reused)."


def run_precompute(config: PrecomputeConfig, progress: ProgressFn | None = None) -> PreprocessResult:
    """:func:`preprocess_dataset` for a validated config."""
    ctx, read = prepare(config, progress)
    check_writable_dir(ctx.view, "output folder", hint=_KEPT_HINT)
    with translate_write_errors(ctx.view, "output folder", _KEPT_HINT), output_lock(ctx.view):
        store.clean_leftovers(ctx.view)
        store.adopt_view(ctx.view)
        ctx.cache.root.mkdir(parents=True, exist_ok=True)
        execute(ctx, read)
    # Each skip was logged as it happened; callers print result.summary() (the CLI does).
    logger.debug("%s", ctx.result.summary())
    return ctx.result


def execute(ctx: RunContext, read: CaptionsReadResult) -> None:
    """Plan, text phase, video phase, then clean-up; an interrupted run keeps every file that is still valid."""
    manifest = Manifest.load(ctx.cache.root / MANIFEST_NAME)
    manifest.settings = ctx.manifest_settings()
    ctx.cache.sweep_temp_files()
    ctx.siblings = store.load_siblings(ctx.view, ctx.cache.root)
    samples = plan_samples(read, manifest, ctx)
    completed = False
    try:
        text_phase(samples, manifest, ctx)
        video_phase(samples, manifest, ctx)
        completed = True
    finally:
        if completed:
            finish(samples, manifest, ctx)
        else:
            # Interrupted: keep every file that is still valid (a re-run reuses it) and record it.
            manifest.save()
        if ctx.models_loaded:
            model_io._release_memory(collect=True)


# ------------------------------------------------------------------------------------------------------ text phase


def text_phase(samples: list[Sample], manifest: Manifest, ctx: RunContext) -> None:
    todo = [s for s in samples if s.need_condition]
    if not todo:
        return
    c = ctx.config
    ctx.models_loaded = True
    tokenizer, text_encoder = model_io._load_text_encoder(
        c.model_source, ctx.device, c.load_text_encoder_in_8bit, ctx.overrides
    )
    try:
        logger.info("encoding %d caption(s) with the text encoder", len(todo))
        for start in range(0, len(todo), c.batch_size):
            chunk = todo[start : start + c.batch_size]
            conditions = model_io.encode_prompts(
                tokenizer, text_encoder, [s.prompt for s in chunk], family=ctx.family, encoding=c.text_encoding
            )
            if ctx.result.condition_bytes is None and conditions:
                ctx.result.condition_bytes = sum(int(t.nbytes) for t in conditions[0].values() if hasattr(t, "nbytes"))
                logger.info("caption conditions: %d bytes per sample", ctx.result.condition_bytes)
            for s, cond in zip(chunk, conditions, strict=True):
                save_tensor(cond, ctx.cache.path(CONDITIONS_DIR, s.key))
                s.entry["condition"] = {"key": ctx.condition_key(s.prompt)}
                ctx.result.conditions_computed.append(s.key)
                ctx.tick(f"caption {s.key}")
            manifest.save_now_and_then()
    finally:
        # The text encoder goes before the VAE loads (T5-XXL is the largest model of the run).
        del text_encoder, tokenizer
        model_io._release_memory(collect=False)
    manifest.save()


# ----------------------------------------------------------------------------------------------------- video phase


def video_phase(samples: list[Sample], manifest: Manifest, ctx: RunContext) -> None:
    todo = [s for s in samples if s.need_latent or s.need_decode]
    if not todo:
        return
    c = ctx.config
    ctx.models_loaded = True
    vae = model_io._load_vae(c.model_source, ctx.device, c.vae_tiling, ctx.overrides)
    try:
        # Batches hold one bucket each (one tensor shape per VAE call).
        groups: dict[Bucket, list[Sample]] = {}
        for s in todo:
            groups.setdefault(s.bucket, []).append(s)
        for bucket in sorted(groups):
            group = groups[bucket]
            for start in range(0, len(group), c.batch_size):
                encode_batch(vae, group[start : start + c.batch_size], ctx)
                manifest.save_now_and_then()
    finally:
        del vae
        model_io._release_memory(collect=False)


def encode_batch(vae, batch: list[Sample], ctx: RunContext) -> None:
    """Load, encode and write the latents of one batch (and its references); decode them when asked."""
    loaded, references = _load_batch(batch, ctx)
    for items in loaded.values():
        ref_items = [(s, *references[s.key]) for s, _, _ in items if s.key in references]
        if ref_items:
            # Reference latents first: a latents file must never exist without them (see the module docstring).
            _encode_references(vae, ref_items, ctx)
        _encode_targets(vae, items, ctx)
    for s in batch:
        if "latent" not in s.entry:
            continue  # failed above
        if s.need_decode:
            decode(vae, s, ctx)
        ctx.tick(f"video {s.key}")


_Pixels = tuple[Sample, "torch.Tensor", float]  # a sample, its pixels [3,F,H,W], their fps


def _load_batch(
    batch: list[Sample], ctx: RunContext
) -> tuple[dict[tuple[int, ...], list[_Pixels]], dict[str, tuple[torch.Tensor, float]]]:
    """The pixels of every sample that needs latents, grouped by shape, and of their references by sample key. A
    sample whose file turns out bad is skipped here (see :func:`fail`)."""
    loaded: dict[tuple[int, ...], list[_Pixels]] = {}
    references: dict[str, tuple[torch.Tensor, float]] = {}
    for s in batch:
        if not s.need_latent:
            continue
        try:
            frames, fps = load_frames(s, ctx.config, ctx.buckets)
        except DatasetError as exc:
            fail(s, media_error_reason(exc, s.media), ctx)
            continue
        if s.reference is not None:
            try:
                ref_frames, ref_fps = load_reference_frames(s, ctx.config)
            except DatasetError as exc:
                fail(s, f"reference video {s.reference}: {media_error_reason(exc, s.reference)}", ctx)
                continue
            references[s.key] = (model_io.frames_to_pixels(ref_frames), ref_fps)
        pixels = model_io.frames_to_pixels(frames)
        loaded.setdefault(tuple(pixels.shape), []).append((s, pixels, fps))
    return loaded, references


def _encode_references(vae, ref_items: list[_Pixels], ctx: RunContext) -> None:
    import torch

    # Reference and target have one shape, so the reference batch is its group's shape too. Its own seed: its
    # latent sample must not reuse the target's noise.
    gens = [torch.Generator().manual_seed(sample_seed(ctx.config.seed, f"{s.key}#reference")) for s, _, _ in ref_items]
    encoded = model_io.encode_latents(vae, torch.stack([p for _, p, _ in ref_items]), gens, family=ctx.family)
    for (s, _, ref_fps), lat in zip(ref_items, encoded, strict=True):
        lat["fps"] = float(ref_fps)
        save_tensor(lat, ctx.cache.path(REFERENCE_LATENTS_DIR, s.key))
        s.entry["reference"]["latent"] = {"shape": [lat["num_frames"], lat["height"], lat["width"]]}
        ctx.result.references_computed.append(s.key)


def _encode_targets(vae, items: list[_Pixels], ctx: RunContext) -> None:
    import torch

    gens = [torch.Generator().manual_seed(s.seed) for s, _, _ in items]
    encoded = model_io.encode_latents(vae, torch.stack([p for _, p, _ in items]), gens, family=ctx.family)
    for (s, _, fps), lat in zip(items, encoded, strict=True):
        lat["fps"] = float(fps)
        if ctx.family.audio_sample_rate:
            # The sound first: a latents file never exists without the audio it was planned with (see the docstring).
            encode_audio(vae, s, fps, lat, ctx)
        save_tensor(lat, ctx.cache.path(LATENTS_DIR, s.key))
        s.entry["latent"] = {
            "key": ctx.latent_key(s.bucket),
            "bucket": str(s.bucket),
            "shape": [lat["num_frames"], lat["height"], lat["width"]],
            "fps": float(fps),
        }
        ctx.result.latents_computed.append(s.key)


def decode(vae, s: Sample, ctx: RunContext) -> None:
    """The sample's latents (and reference latents) back to pixels, to check by eye."""
    cache, frames = ctx.cache, s.bucket.frames
    model_io.decode_latents_file(vae, cache.path(LATENTS_DIR, s.key), cache.decoded_path(s.key, frames), family=ctx.family)
    if s.reference is not None:
        model_io.decode_latents_file(
            vae, cache.path(REFERENCE_LATENTS_DIR, s.key), cache.decoded_path(s.key, frames, DECODED_REFERENCE_DIR),
            family=ctx.family,
        )
    ctx.result.decoded.append(s.key)


def fail(s: Sample, reason: str, ctx: RunContext) -> None:
    """A sample that turned out bad while reading its frames: skip it and drop its cache."""
    ctx.skip(s.key, reason)
    s.entry.pop("latent", None)
    (s.entry.get("reference") or {}).pop("latent", None)
    ctx.cache.drop_latent(s.key)
    ctx.tick(f"skipped {s.key}")


# ---------------------------------------------------------------------------------------------------------- finish


def finish(samples: list[Sample], manifest: Manifest, ctx: RunContext) -> None:
    """Record the completed samples, delete every cached file that does not belong to one, and publish the cache as
    the output folder's current one (:func:`.store.publish`)."""
    cache = ctx.cache
    with_reference = bool(ctx.config.reference_column)
    complete = [
        s
        for s in samples
        if "latent" in s.entry and "condition" in s.entry and (s.reference is None or "latent" in s.entry["reference"])
    ]
    manifest.samples = {s.key: s.entry for s in complete}
    manifest.save()
    names = {cache_name(s.key) for s in complete}
    decoded = {cache.decoded_path(s.key, s.bucket.frames).relative_to(cache.root / DECODED_DIR) for s in complete}
    # Without a reference column no reference latents are current: they all go (see the module docstring).
    ref_names = names if with_reference else set()
    ref_decoded = decoded if with_reference else set()
    # Latents before their reference latents and conditions: see the module docstring.
    cache.sweep(LATENTS_DIR, lambda rel: rel in names, (".pt",))
    cache.sweep(REFERENCE_LATENTS_DIR, lambda rel: rel in ref_names, (".pt",))
    with_audio = {cache_name(s.key) for s in complete if (s.entry.get("audio") or {}).get("frames")}
    cache.sweep(AUDIO_LATENTS_DIR, lambda rel: rel in with_audio, (".pt",))
    cache.sweep(CONDITIONS_DIR, lambda rel: rel in names, (".pt",))
    cache.sweep(DECODED_DIR, lambda rel: rel in decoded, (".mp4", ".png"))
    cache.sweep(DECODED_REFERENCE_DIR, lambda rel: rel in ref_decoded, (".mp4", ".png"))
    store.publish(cache, ctx.view)
    for s in complete:
        ctx.result.buckets[s.key] = s.entry["latent"]["bucket"]
        if ctx.family.audio_sample_rate and not (s.entry.get("audio") or {}).get("frames"):
            ctx.result.without_audio.append(s.key)
        if s.need_latent or s.need_condition:
            ctx.result.processed.append(s.key)
        else:
            ctx.result.reused.append(s.key)


__all__ = ["encode_batch", "execute", "finish", "preprocess_dataset", "run_precompute", "text_phase", "video_phase"]
