"""The precomputed dataset (``.precomputed/{latents,conditions}``) and bucket-aware, resumable batching."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ltx_train_lib.errors import DatasetError

LATENTS_DIR = "latents"
CONDITIONS_DIR = "conditions"


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


def _legacy_condition_name(rel: Path) -> Path:
    # The reference's legacy names: latents/latent_X.pt <-> conditions/condition_X.pt
    if rel.name.startswith("latent_"):
        return rel.with_name("condition_" + rel.name[len("latent_") :])
    return rel


@dataclass(frozen=True)
class Sample:
    latents_path: Path
    conditions_path: Path
    shape: tuple[int, int, int]  # latent (F', H', W'): the bucket key


class PrecomputedDataset:
    """Pairs ``latents/<rel>.pt`` with ``conditions/<rel>.pt``. Every latent must have its condition."""

    def __init__(self, root: str | Path, reference_latents_dir: str | None = None) -> None:
        import torch

        self.root = resolve_precomputed_root(root)
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
            samples.append(Sample(lat, cond, shape))
        if missing:
            shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
            raise DatasetError(
                f"{len(missing)} latent file(s) in '{self.root / LATENTS_DIR}' have no matching conditions/ file: {shown}; "
                "re-run preprocess_dataset.py so every clip has both its latents and its caption embedding"
            )
        self.samples = samples

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        import torch

        s = self.samples[index]
        lat = torch.load(s.latents_path, map_location="cpu", weights_only=True)
        cond = torch.load(s.conditions_path, map_location="cpu", weights_only=True)
        # A NaN/Inf in the inputs makes the loss NaN, which would be blamed on the learning rate: name the file instead.
        for path, what, tensor in ((s.latents_path, "latents", lat["latents"]), (s.conditions_path, "prompt_embeds", cond["prompt_embeds"])):
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
            "fps": float(lat.get("fps", 24.0)) if float(lat.get("fps", 24.0)) > 0 else 1.0,
            "prompt_embeds": cond["prompt_embeds"],
            "prompt_attention_mask": cond["prompt_attention_mask"].bool(),
            "index": index,
        }
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


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    import torch

    first = items[0]
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
    if "ref_latents" in first:
        batch["ref_latents"] = torch.stack([it["ref_latents"] for it in items])
    return batch


class BucketBatchPlan:
    """Deterministic, resumable batch order.

    Each epoch shuffles every bucket with ``Random(seed, epoch)``, cuts it into full batches (within one bucket:
    all latents of a batch share a shape), shuffles the batches and deals them to ranks round-robin. The position
    is (epoch, index into this rank's batches), so a resumed run continues with exactly the next batch.
    """

    def __init__(self, dataset: PrecomputedDataset, batch_size: int, seed: int, rank: int = 0, world_size: int = 1) -> None:
        self.groups = dataset.buckets()
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.position = 0
        self._cache: tuple[int, list[list[int]]] | None = None
        usable = sum(len(v) // batch_size for v in self.groups.values())
        if usable < world_size:
            sizes = ", ".join(f"{f}x{h}x{w} latents: {len(v)}" for (f, h, w), v in self.groups.items())
            raise DatasetError(
                f"not enough samples for batch_size {batch_size} x {world_size} process(es): a batch is formed within "
                f"one resolution bucket and each bucket has too few samples ({sizes}); lower optimization.batch_size "
                "or add clips"
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
