"""Socket types: the small records that flow between the pack's nodes (paths plus metadata, never tensors).

Each record is a plain dataclass, so a stage can be re-run from the paths it names (CLI, another machine) and
ComfyUI's cache never holds model memory. The type names make the graph connect only in valid ways:

    LoadVideos ─LTXT_VIDEOS→ SplitScenes ─LTXT_VIDEOS→ QwenCaption ─LTXT_CAPTIONS→ PrecomputeLatents
    ─LTXT_DATASET→ TrainLoRA ─LTXT_LORA→ ConvertComfy / PushToHub / CompareCheckpoints

Raw videos and scene clips are both "a set of media files", so already-cut clips can go from LoadVideos straight
to QwenCaption.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

VIDEOS = "LTXT_VIDEOS"
CAPTIONS = "LTXT_CAPTIONS"
DATASET = "LTXT_DATASET"
LORA = "LTXT_LORA"
# Settings records (plain dicts of widget values) from the options nodes into the compact nodes.
TRAIN_OPTIONS = "LTXT_TRAIN_OPTIONS"
PRECOMPUTE_OPTIONS = "LTXT_PRECOMPUTE_OPTIONS"
ALL_TYPES = (VIDEOS, CAPTIONS, DATASET, LORA, TRAIN_OPTIONS, PRECOMPUTE_OPTIONS)


@dataclass(frozen=True)
class MediaSet:
    """Media files (videos, maybe images) in one folder tree, and where this dataset's outputs go."""

    folder: Path  # the folder the files live in
    files: tuple[Path, ...]  # absolute paths, stable order
    work_dir: Path  # <output>/ltx_trainer/datasets/<name>: every output made from this set goes under it
    name: str  # dataset name (the work folder's name)
    stage: str = "raw"  # "raw" (as loaded) | "scenes" (clips cut by SplitScenes)

    def __len__(self) -> int:
        return len(self.files)


@dataclass(frozen=True)
class CaptionSet:
    """A caption file (``captions.json``: ``[{"caption", "media_path"}]``, paths relative to the file)."""

    captions_file: Path
    work_dir: Path
    name: str
    count: int  # captioned media


@dataclass(frozen=True)
class PrecomputedSet:
    """A ``.precomputed`` folder ready for training."""

    precomputed_dir: Path
    captions_file: Path | None
    model_source: str  # the model whose VAE/text encoder made the cache: training must use the same one
    buckets: tuple[str, ...]
    samples: int
    fingerprint: str  # changes when any cached sample changes: part of the training job's identity
    trigger_word: str | None = None
    name: str = "dataset"


@dataclass(frozen=True)
class LoraResult:
    """A finished training job and its files."""

    job_id: str
    job_dir: Path
    lora: Path  # diffusers/peft layout
    lora_comfy: Path | None  # ComfyUI layout
    steps: int
    model_source: str
    rank: int
    alpha: int
    trigger_word: str | None = None
    samples: tuple[Path, ...] = field(default_factory=tuple)  # last validation videos
    config_file: Path | None = None
    name: str = "ltxv_lora"
