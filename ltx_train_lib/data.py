"""The precomputed dataset (``.precomputed/{latents,conditions}``) and bucket-aware, resumable batching.

The dataset reads the top level of ``.precomputed/``: the cache of the last completed preprocessing run (the other
caches kept under ``.precomputed/cache/<key>/`` are the same layout, and can be pointed at directly). Its manifest
says how the conditions were encoded; a dataset asked for another text encoding refuses to load, before any model
does (see :func:`check_text_encoding`).
"""

from __future__ import annotations

import logging
import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ltx_train_lib.errors import DatasetError

LATENTS_DIR = "latents"
CONDITIONS_DIR = "conditions"
AUDIO_LATENTS_DIR = "audio_latents"  # LTX-2: each clip's sound, encoded by the audio VAE (same relative names)
# What a cache without our manifest (made by the reference trainer) is taken to be: its T5 ran without the mask.
UNRECORDED_TEXT_ENCODING = "reference"

logger = logging.getLogger(__name__)


def resolve_precomputed_root(root: str | Path) -> Path:
    """Accept the dataset folder (descends into .precomputed) or the .precomputed folder itself."""
    root = Path(root).expanduser()
    if not root.exists():
        raise DatasetError(f"data.preprocessed_data_root: '{root}' does not exist; run preprocess_dataset.py first or fix the path")
    if (root / ".precomputed").is_dir():
        root = root / ".precomputed"
    if not (root / LATENTS_DIR).is_dir():
        raise DatasetError(
            f"data.preprocessed_data_root: '{root}' has no '{LATENTS_DIR}/' folder; point it at a dataset preprocessed "
            "with preprocess_dataset.py (the folder holding .precomputed/)"
        )
    return root


def check_text_encoding(root: Path, expected: str | None) -> str:
    """The text encoding of the cache ``root`` (from its manifest); raises DatasetError when it is not
    ``expected`` (None: any). A cache without our manifest (the reference trainer's) is accepted as ``reference``,
    with a warning."""
    from ltx_train_lib.precompute.manifest import cache_text_encoding

    found = cache_text_encoding(root)
    if found is None:
        if expected is not None:
            extra = (
                "" if expected == UNRECORDED_TEXT_ENCODING else
                f"; data.text_encoding is '{expected}', so training sees other caption features than the ones it "
                f"expects: re-run preprocess_dataset.py --text-encoding {expected} to make them"
            )
            logger.warning(
                "'%s' has no readable preprocessing manifest (made by the reference trainer?): its caption "
                "embeddings are taken to be '%s' (T5 without the attention mask)%s",
                root, UNRECORDED_TEXT_ENCODING, extra,
            )
        return UNRECORDED_TEXT_ENCODING
    if expected is not None and found != expected:
        raise DatasetError(
            f"data.preprocessed_data_root: the caption embeddings in '{root}' were made with text encoding '{found}' "
            f"but data.text_encoding is '{expected}'. Re-run preprocess_dataset.py with --text-encoding {expected} "
            f"(only the caption embeddings are recomputed; the latents are reused), or set data.text_encoding: "
            f"{found}."
        )
    return found


def _legacy_condition_name(rel: Path) -> Path:
    # The reference's legacy names: latents/latent_X.pt <-> conditions/condition_X.pt
    if rel.name.startswith("latent_"):
        return rel.with_name("condition_" + rel.name[len("latent_") :])
    return rel


def _latents_fps(header: dict[str, Any]) -> float:
    """The frame rate a latents file was encoded at (the reference's schema: ``fps``; absent -> 24; <= 0 -> 1)."""
    fps = float(header.get("fps", 24.0))
    return fps if fps > 0 else 1.0


@dataclass(frozen=True)
class Sample:
    latents_path: Path
    conditions_path: Path
    shape: tuple[int, int, int]  # latent (F', H', W'): the resolution bucket
    fps: float = 24.0  # with the shape, the batch key: one RoPE time scale per batch
    audio_path: Path | None = None  # audio latents, when the dataset trains sound


def has_audio_latents(root: str | Path) -> bool:
    """Whether a precomputed dataset holds audio latents (``audio_latents/`` with at least one file)."""
    folder = resolve_precomputed_root(root) / AUDIO_LATENTS_DIR
    return folder.is_dir() and any(folder.rglob("*.pt"))


class PrecomputedDataset:
    """Pairs ``latents/<rel>.pt`` with ``conditions/<rel>.pt``. Every latent must have its condition.

    ``text_encoding``: the encoding the conditions must have been made with (``data.text_encoding``); checked
    against the cache's manifest before any file is read (None: not checked). ``self.text_encoding`` is what the
    cache holds."""

    def __init__(self, root: str | Path, reference_latents_dir: str | None = None, text_encoding: str | None = None,
                 with_audio: bool = False) -> None:
        """``with_audio``: every sample also loads its audio latents (``audio_latents/<rel>.pt``); clips without
        them (no sound track) are left out and named in a warning (``self.without_audio``)."""
        import torch

        self.root = resolve_precomputed_root(root)
        self.text_encoding = check_text_encoding(self.root, text_encoding)
        latents = sorted(p for p in (self.root / LATENTS_DIR).rglob("*.pt") if not p.name.startswith("."))
        if not latents:
            raise DatasetError(f"'{self.root / LATENTS_DIR}' is empty; preprocess some videos first (preprocess_dataset.py)")
        self.reference_dir = self.root / reference_latents_dir if reference_latents_dir else None
        samples: list[Sample] = []
        missing: list[str] = []
        for lat in latents:
            rel = lat.relative_to(self.root / LATENTS_DIR)
            cond = self.root / CONDITIONS_DIR / rel
            if not cond.is_file():
                cond = self.root / CONDITIONS_DIR / _legacy_condition_name(rel)
            if not cond.is_file():
                missing.append(str(rel))
                continue
            header = torch.load(lat, map_location="cpu", weights_only=True)
            try:
                shape = (int(header["num_frames"]), int(header["height"]), int(header["width"]))
            except (KeyError, TypeError) as exc:
                raise DatasetError(f"'{lat}': not a latents file of the expected schema (missing {exc}); re-run preprocessing") from None
            samples.append(Sample(lat, cond, shape, _latents_fps(header)))
        self.without_audio: list[str] = []
        if with_audio:
            samples = self._attach_audio(samples)
        if missing:
            shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
            raise DatasetError(
                f"{len(missing)} latent file(s) in '{self.root / LATENTS_DIR}' have no matching conditions/ file: {shown}; "
                "re-run preprocess_dataset.py so every clip has both its latents and its caption embedding"
            )
        self.samples = samples

    def _attach_audio(self, samples: list[Sample]) -> list[Sample]:
        audio_root = self.root / AUDIO_LATENTS_DIR
        kept: list[Sample] = []
        for s in samples:
            path = audio_root / s.latents_path.relative_to(self.root / LATENTS_DIR)
            if path.is_file():
                kept.append(Sample(s.latents_path, s.conditions_path, s.shape, s.fps, path))
            else:
                self.without_audio.append(s.latents_path.relative_to(self.root / LATENTS_DIR).as_posix())
        if not kept:
            raise DatasetError(
                f"'{self.root}' has no audio latents for any of its {len(samples)} sample(s) but the run trains sound "
                "(model.modalities audio_video or audio); preprocess clips that have a sound track with an LTX-2 "
                "model_source (preprocess_dataset.py --model-source ...), or set model.modalities: video"
            )
        if self.without_audio:
            shown = ", ".join(self.without_audio[:8]) + (f" and {len(self.without_audio) - 8} more" if len(self.without_audio) > 8 else "")
            logger.warning(
                "%d of %d clip(s) have no sound track and are left out of audio training: %s (add their audio, or set "
                "model.modalities: video to train on every clip without sound)",
                len(self.without_audio), len(samples), shown,
            )
        return kept

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        import torch

        s = self.samples[index]
        lat = torch.load(s.latents_path, map_location="cpu", weights_only=True)
        cond = torch.load(s.conditions_path, map_location="cpu", weights_only=True)
        audio = torch.load(s.audio_path, map_location="cpu", weights_only=True) if s.audio_path is not None else None
        checks = [(s.latents_path, "latents", lat["latents"]), (s.conditions_path, "prompt_embeds", cond["prompt_embeds"])]
        if "audio_prompt_embeds" in cond:
            checks.append((s.conditions_path, "audio_prompt_embeds", cond["audio_prompt_embeds"]))
        if audio is not None:
            checks.append((s.audio_path, "audio latents", audio["latents"]))
        # A NaN/Inf in the inputs makes the loss NaN, which would be blamed on the learning rate: name the file instead.
        for path, what, tensor in checks:
            bad = int((~torch.isfinite(tensor)).sum())
            if bad:
                raise DatasetError(
                    f"'{path}': {bad} of {tensor.numel()} values of its {what} are NaN or infinite (a damaged file or a "
                    "failed encoding); delete it and run preprocess_dataset.py again to recompute it, or remove the clip "
                    "from the dataset"
                )
        item = {
            "latents": lat["latents"],
            "num_frames": int(lat["num_frames"]),
            "height": int(lat["height"]),
            "width": int(lat["width"]),
            "fps": _latents_fps(lat),
            "prompt_embeds": cond["prompt_embeds"],
            "prompt_attention_mask": cond["prompt_attention_mask"].bool(),
            "index": index,
        }
        if "audio_prompt_embeds" in cond:
            item["audio_prompt_embeds"] = cond["audio_prompt_embeds"]
        if audio is not None:
            item["audio_latents"] = audio["latents"]
        if self.reference_dir is not None:
            ref = self.reference_dir / s.latents_path.relative_to(self.root / LATENTS_DIR)
            if not ref.is_file():
                raise DatasetError(f"reference latents '{ref}' missing for '{s.latents_path}'; preprocess with --reference-column")
            item["ref_latents"] = torch.load(ref, map_location="cpu", weights_only=True)["latents"]
            bad = int((~torch.isfinite(item["ref_latents"])).sum())
            if bad:
                raise DatasetError(
                    f"'{ref}': {bad} of {item['ref_latents'].numel()} values of its latents are NaN or infinite (a damaged "
                    "file or a failed encoding); delete it and run preprocess_dataset.py again to recompute it"
                )
        return item

    def buckets(self) -> dict[tuple[int, int, int], list[int]]:
        groups: dict[tuple[int, int, int], list[int]] = defaultdict(list)
        for i, s in enumerate(self.samples):
            groups[s.shape].append(i)
        return dict(groups)

    def batch_groups(self) -> dict[tuple[tuple[int, int, int], float], list[int]]:
        """Sample indices by (latent shape, fps): what one batch may hold. The transformer gets one RoPE grid per
        batch, and its time axis is scaled by the fps, so clips of one shape at two frame rates never share one."""
        groups: dict[tuple[tuple[int, int, int], float], list[int]] = defaultdict(list)
        for i, s in enumerate(self.samples):
            groups[(s.shape, s.fps)].append(i)
        return dict(groups)

    def fps_counts(self) -> dict[float, int]:
        """How many video samples (more than one latent frame) were encoded at each frame rate, most common first
        (ties: lower fps first). Images and single-latent-frame clips do not count: their position has no time."""
        counts = Counter(s.fps for s in self.samples if s.shape[0] > 1)
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    import torch

    first = items[0]
    rates = {it["fps"] for it in items}
    if len(rates) > 1:
        raise DatasetError(
            f"samples {[it['index'] for it in items]} were batched together at different frame rates "
            f"({', '.join(f'{r:g}' for r in sorted(rates))} fps) but a batch has one RoPE time scale; batch with "
            "BucketBatchPlan (it groups by shape and fps) or use batch_size 1"
        )
    batch = {
        "latents": torch.stack([it["latents"] for it in items]),
        "prompt_embeds": torch.stack([it["prompt_embeds"] for it in items]),
        "prompt_attention_mask": torch.stack([it["prompt_attention_mask"] for it in items]),
        "num_frames": first["num_frames"],
        "height": first["height"],
        "width": first["width"],
        "fps": first["fps"],
        "indices": [it["index"] for it in items],
    }
    for key in ("ref_latents", "audio_latents", "audio_prompt_embeds"):
        if key in first:
            batch[key] = torch.stack([it[key] for it in items])
    return batch


class BucketBatchPlan:
    """Deterministic, resumable batch order.

    Each epoch shuffles every group with ``Random(seed, epoch)``, cuts it into full batches, shuffles the batches
    and deals them to ranks round-robin. A group is one resolution bucket at one frame rate
    (``PrecomputedDataset.batch_groups``): all latents of a batch share a shape and an fps, so its RoPE grid is
    every sample's own. (A dataset with one fps per shape gets the same groups, in the same order, as when groups
    were shapes alone.) The position is (epoch, index into this rank's batches), so a resumed run continues with
    exactly the next batch.
    """

    def __init__(self, dataset: PrecomputedDataset, batch_size: int, seed: int, rank: int = 0, world_size: int = 1) -> None:
        self.groups = dataset.batch_groups()
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.position = 0
        self._cache: tuple[int, list[list[int]]] | None = None
        usable = sum(len(v) // batch_size for v in self.groups.values())
        if usable < world_size:
            sizes = ", ".join(f"{f}x{h}x{w} latents at {fps:g} fps: {len(v)}" for ((f, h, w), fps), v in self.groups.items())
            raise DatasetError(
                f"not enough samples for batch_size {batch_size} x {world_size} process(es): a batch is formed within "
                f"one resolution bucket at one frame rate and each has too few samples ({sizes}); lower "
                "optimization.batch_size or add clips"
            )

    def batches_for_epoch(self, epoch: int) -> list[list[int]]:
        if self._cache and self._cache[0] == epoch:
            return self._cache[1]
        rng = random.Random(f"{self.seed}-{epoch}")
        batches: list[list[int]] = []
        for key in sorted(self.groups):
            idx = list(self.groups[key])
            rng.shuffle(idx)
            batches += [idx[i : i + self.batch_size] for i in range(0, len(idx) - self.batch_size + 1, self.batch_size)]
        rng.shuffle(batches)
        usable = len(batches) - len(batches) % self.world_size  # every rank gets the same number of batches
        mine = batches[:usable][self.rank :: self.world_size]
        self._cache = (epoch, mine)
        return mine

    def next_batch(self) -> list[int]:
        batches = self.batches_for_epoch(self.epoch)
        if self.position >= len(batches):
            self.epoch += 1
            self.position = 0
            batches = self.batches_for_epoch(self.epoch)
        batch = batches[self.position]
        self.position += 1
        return batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch = int(state["epoch"])
        self.position = int(state["position"])
