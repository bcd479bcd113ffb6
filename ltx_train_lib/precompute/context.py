"""One run's resolved settings and its report: what :mod:`.plan` and :mod:`.run` share.

:func:`prepare` turns a :class:`PrecomputeConfig` into a :class:`RunContext` and does every check that can fail for
the whole run (no caption file, an unknown model, no such reference column, no GPU) before the cache folder is
locked or a model is loaded. Problems with single samples are not errors: they are skipped, with a reason, into
:attr:`PreprocessResult.skipped`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ltx_train_lib.buckets import Bucket
from ltx_train_lib.errors import ConfigError, DatasetError

from . import model_io
from .cache import CacheDir
from .config import PrecomputeConfig
from .manifest import PRECOMPUTED_DIR, cache_key, condition_key, latent_key

if TYPE_CHECKING:
    from ltx_train_lib.captions_io import CaptionsReadResult

    from .store import Sibling

logger = logging.getLogger(__name__)

ProgressFn = Callable[[int, int, str], None]
# Caption files looked for when a folder is given instead of a file (captions.json is what the pipeline writes,
# dataset.json what the reference's caption_videos.py writes by default).
FOLDER_CAPTION_FILES = ("captions.json", "dataset.json")


@dataclass
class PreprocessResult:
    """What a run did. Sample names are media paths relative to the caption file's folder."""

    output_dir: Path  # the output folder: its top level is the current cache (see .store)
    cache_dir: Path | None = None  # the run's own cache, output_dir/cache/<key>
    processed: list[str] = field(default_factory=list)  # latents and/or condition (re)computed
    reused: list[str] = field(default_factory=list)  # both taken from a cache as they were
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (media path or caption file, reason)
    removed: list[str] = field(default_factory=list)  # cache entries deleted: their media left the dataset
    latents_computed: list[str] = field(default_factory=list)
    conditions_computed: list[str] = field(default_factory=list)
    references_computed: list[str] = field(default_factory=list)  # IC-LoRA reference latents (re)computed
    decoded: list[str] = field(default_factory=list)
    buckets: dict[str, str] = field(default_factory=dict)  # sample -> bucket "WxHxF" it was encoded at
    audio_computed: list[str] = field(default_factory=list)  # audio latents (re)computed (audio-video families)
    without_audio: list[str] = field(default_factory=list)  # clips encoded without sound: no audio track (or images)
    condition_bytes: int | None = None  # bytes of one cached caption condition (the text representation's size)

    @property
    def ok(self) -> bool:
        return not self.skipped

    @property
    def samples(self) -> int:
        return len(self.processed) + len(self.reused)

    def summary(self) -> str:
        computed = f"{len(self.latents_computed)} latents, {len(self.conditions_computed)} captions"
        if self.references_computed:
            computed += f", {len(self.references_computed)} references"
        parts = [
            f"{self.samples} sample(s) ready in {self.output_dir}",
            f"{len(self.processed)} computed ({computed})",
            f"{len(self.reused)} reused from the cache",
        ]
        if self.audio_computed or self.without_audio:
            parts.append(f"{len(self.audio_computed)} audio latents")
        if self.removed:
            parts.append(f"{len(self.removed)} stale removed")
        if self.skipped:
            parts.append(f"{len(self.skipped)} skipped")
        text = "; ".join(parts) + "."
        if self.condition_bytes:
            text += f"\nCaption conditions: {self.condition_bytes / 1024:.1f} KiB per sample."
        if self.without_audio:
            shown = ", ".join(self.without_audio[:10]) + (f" and {len(self.without_audio) - 10} more" if len(self.without_audio) > 10 else "")
            text += f"\n{len(self.without_audio)} clip(s) have no sound track (audio-video training leaves them out): {shown}"
        if self.skipped:
            text += "\nSkipped:\n" + "\n".join(f"  - {path}: {reason}" for path, reason in self.skipped)
        return text


@dataclass
class RunContext:
    """The settings of one run, resolved once, and its running report (result and progress)."""

    config: PrecomputeConfig
    buckets: list[Bucket]
    base_dir: Path  # the caption file's folder: media paths (and so sample keys) are relative to it
    view: Path  # the output folder; its top level is the current cache, published when the run completes
    vae_id: str  # identities of the components, for the cache keys (see model_io._model_ids)
    text_id: str
    overrides: dict[str, str]  # component paths replacing the model source's (absolute)
    device: Any  # a torch.device
    result: PreprocessResult
    progress: ProgressFn | None = None
    done: int = 0
    total: int = 0
    models_loaded: bool = False
    siblings: list[Sibling] = field(default_factory=list)  # the output folder's other caches (files to reuse)

    def tick(self, message: str, n: int = 1) -> None:
        self.done += n
        if self.progress is not None:
            self.progress(min(self.done, self.total), self.total, message)

    def skip(self, name: str, reason: str) -> None:
        self.result.skipped.append((name, reason))
        logger.warning("skipped %s: %s", name, reason)

    @property
    def family(self):
        """The model family of ``config.model_source`` (it answers every model question of the run)."""
        return model_io.family_of(self.config.model_source)

    @cached_property
    def cache_key(self) -> str:
        """The name of this run's cache folder, ``<output folder>/cache/<key>`` (see :func:`.manifest.cache_key`)."""
        return cache_key(self._key_settings())

    @cached_property
    def cache(self) -> CacheDir:
        """The cache this run reads and writes; the top level of the output folder only when it completes."""
        from .store import store_root

        return CacheDir(store_root(self.view) / self.cache_key)

    def condition_key(self, prompt: str) -> str:
        return condition_key(prompt, self.text_id, self.config.text_encoding)

    def latent_key(self, bucket: Bucket) -> str:
        c = self.config
        return latent_key(
            bucket,
            vae_id=self.vae_id,
            reshape_mode=c.reshape_mode,
            frame_selection=c.frame_selection,
            seed=c.seed,
            vae_tiling=c.vae_tiling,
        )

    def _key_settings(self) -> dict[str, Any]:
        c = self.config
        return {
            "family": self.family.name,
            "buckets": [str(b) for b in self.buckets],
            "vae": self.vae_id,
            "text_encoder": self.text_id,
            "text_encoding": c.text_encoding,
            "reshape_mode": c.reshape_mode,
            "frame_selection": c.frame_selection,
            "seed": c.seed,
            "vae_tiling": c.vae_tiling,
            **({"audio": self.audio_settings} if self.audio_settings else {}),
        }

    @property
    def audio_settings(self) -> dict[str, Any] | None:
        """What the audio latents depend on besides the media (audio-video families): the sample rate the sound is
        read at; None for a video-only family."""
        rate = self.family.audio_sample_rate
        return {"sample_rate": rate, "channels": 2} if rate else None

    def manifest_settings(self) -> dict[str, Any]:
        """The run's settings as the manifest records them: the cache's key and what made it (for the trainer's
        check of the text encoding, for people and other tools; the per-sample keys decide reuse)."""
        c = self.config
        return {
            **self._key_settings(),
            "cache_key": self.cache_key,
            "model_source": c.model_source,
            "id_token": c.id_token,
            "remove_llm_prefixes": c.remove_llm_prefixes,
            "reference_column": c.reference_column,
        }


def resolve_dataset_file(dataset_file: str | Path) -> Path:
    """A caption file, or a folder holding captions.json (or dataset.json)."""
    path = Path(dataset_file).expanduser()
    if path.is_dir():
        for name in FOLDER_CAPTION_FILES:
            if (path / name).is_file():
                return path / name
        raise DatasetError(
            f"{path}: the folder has no {' or '.join(FOLDER_CAPTION_FILES)}. Pass the caption file itself "
            "(.json, .jsonl, .csv or .txt), or caption the media first (caption_videos.py)."
        )
    if not path.exists():
        raise DatasetError(f"{path}: dataset file not found. Check the path (a caption file or a dataset folder).")
    return path


def pick_device(device: str | None):
    """The torch device to encode on: CUDA when visible and none was asked for."""
    import torch

    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(f"device '{device}': {exc}; use e.g. cuda, cuda:1 or cpu") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device '{device}': no CUDA GPU is visible to PyTorch; use --device cpu (slow) or fix CUDA")
    return dev


def prepare(config: PrecomputeConfig, progress: ProgressFn | None) -> tuple[RunContext, CaptionsReadResult]:
    """Resolve ``config`` for a run and read its caption file; raises an ``LtxTrainError`` for a run that cannot
    start. Nothing is written yet."""
    from ltx_train_lib.captions_io import read_captions_checked

    c = config
    vae_id, text_id = model_io._model_ids(c.model_source, c.load_text_encoder_in_8bit)
    # Component files from ComfyUI's model folders override the source's own (as model.*_path in the config).
    overrides = {"text_encoder_path": c.text_encoder_path, "tokenizer_path": c.tokenizer_path, "vae_path": c.vae_path,
                 "audio_vae_path": c.audio_vae_path}
    overrides = {k: str(Path(v).expanduser().resolve()) for k, v in overrides.items() if v}
    if "vae_path" in overrides or "audio_vae_path" in overrides:
        vae_id = "path:" + "+".join(overrides[k] for k in ("vae_path", "audio_vae_path") if k in overrides)
    if "text_encoder_path" in overrides:
        text_id = f"path:{overrides['text_encoder_path']}" + (":8bit" if c.load_text_encoder_in_8bit else "")
    captions_path = resolve_dataset_file(c.dataset_file)
    base_dir = Path(os.path.abspath(captions_path)).parent
    out = Path(c.output_dir).expanduser() if c.output_dir else base_dir / PRECOMPUTED_DIR
    read = read_captions_checked(captions_path, caption_column=c.caption_column, media_column=c.media_column)
    column = c.reference_column
    if column and read.entries and not any(column in e.extra for e in read.entries):
        found = sorted({k for e in read.entries for k in e.extra})
        raise DatasetError(
            f"{captions_path}: no reference column '{column}' (other columns found: "
            f"{', '.join(repr(col) for col in found) or 'none'}). Add the reference videos with compute_condition.py, "
            "or name the column that holds them with --reference-column."
        )
    ctx = RunContext(
        config=c,
        buckets=c.buckets,
        base_dir=base_dir,
        view=out,
        vae_id=vae_id,
        text_id=text_id,
        overrides=overrides,
        device=pick_device(c.device),
        result=PreprocessResult(output_dir=out),
        progress=progress,
    )
    ctx.result.cache_dir = ctx.cache.root
    return ctx, read


__all__ = [
    "FOLDER_CAPTION_FILES",
    "PreprocessResult",
    "ProgressFn",
    "RunContext",
    "pick_device",
    "prepare",
    "resolve_dataset_file",
]
