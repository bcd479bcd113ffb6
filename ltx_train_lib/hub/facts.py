"""What is true about a finished run, gathered once for its Hub model card (and for the upload that publishes it).

``collect_card_facts`` reads the output folder (weights files, their safetensors header, the training config,
validation samples) and settles every precedence question (config value or header value, which trigger word) here,
so the card renders from plain values and a model family's card text can be written against ``CardFacts`` alone.

These types are also the interface a model family implements for its part of the card (``FamilyCardText``); they
live apart from the renderer so family code imports data types, not the card's markdown.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ltx_train_lib.hub.folder import WeightsKind, config_dict, find_weight_files, weights_metadata
from ltx_train_lib.hub.samples import last_validation_samples

DEFAULT_HUB = "https://huggingface.co"
_REPO_ID = re.compile(r"[\w.-]+/[\w.-]+")


@dataclass(frozen=True)
class CardSample:
    path_in_repo: str  # the GIF's path in the Hub repository, as the card links it
    prompt: str  # "" when not recorded
    video: Path | None = None  # the local mp4 the GIF is made from; None when the caller made the GIF itself


@dataclass(frozen=True)
class CardFacts:
    """Everything the model card says, as display-ready values (strings as they appear in the settings table).

    ``None`` / empty means "not recorded": the card leaves that row or section out rather than guessing.
    """

    repo_id: str
    kind: WeightsKind
    files: tuple[str, ...]  # uploaded weight file names
    output_dir: Path | None  # the folder ``files`` lie in; None when facts were given rather than read
    base_model_source: str | None  # model.model_source as written: a family's version name, a repo id or a path
    base_model_on_disk: bool  # base_model_source names an existing local path (so it is not a Hub repo id)
    trigger_word: str | None
    steps: str | None
    learning_rate: str | None
    rank: str | None
    alpha: str | None
    target_modules: tuple[str, ...]
    batch_size: str | None
    accumulation_steps: int | None
    resolution_buckets: tuple[str, ...]
    conditioning_mode: str | None
    first_frame_p: str | None
    samples: tuple[CardSample, ...]
    samples_step: int | None
    # The raw inputs, kept so a family's card text can read a detail the fields above do not carry.
    config: Mapping[str, Any] = field(default_factory=dict, repr=False)
    weights_metadata: Mapping[str, str] = field(default_factory=dict, repr=False)
    # The LoRA health scan of the uploaded files (lora_health.LoraHealth.summary()); None when not scanned.
    health: str | None = None

    @property
    def is_lora(self) -> bool:
        return self.kind == "lora"

    @property
    def model_name(self) -> str:
        return self.repo_id.split("/")[-1]

    @property
    def prompt_example(self) -> str:
        """A prompt for usage snippets: the first sample's, else the trigger word and a placeholder."""
        if self.samples and self.samples[0].prompt:
            return self.samples[0].prompt
        return (f"{self.trigger_word}, " if self.trigger_word else "") + "a video of ..."


@dataclass(frozen=True)
class BaseModelInfo:
    name: str  # what people read
    hub_id: str | None  # front-matter base_model (must be a Hub repo id; never a local path)
    link: str | None
    version: str | None
    diffusers_repo: str | None  # a diffusers-layout repository of the base model, where one exists


@dataclass(frozen=True)
class FamilyCardText:
    """A model family's part of the card: what only the family knows (classes, loaders, repos, licence)."""

    family_name: str  # e.g. for the commit message: "Upload <family_name> LoRA"
    base_model: BaseModelInfo
    tags: tuple[str, ...]  # front-matter tags; the first names the family, the card adds lora/full-fine-tune after it
    usage_code: str  # Python that loads the base model in diffusers and applies these weights
    comfyui_instructions: str  # numbered steps: which files go where, which loader/VAE/text-encoder nodes
    licence: str  # front-matter license id ("other" when the base model's licence has no Hub id)
    licence_text: str  # the card's License section


def base_model_from_source(source: str, on_disk: bool) -> BaseModelInfo:
    """A base model given as a Hub repo id or a local path (what a family falls back to for names it does not own)."""
    if _REPO_ID.fullmatch(source) and not on_disk:
        return BaseModelInfo(source, source, f"{DEFAULT_HUB}/{source}", None, source)
    # A local folder or file: name it, but do not put a path in the public card's front matter.
    return BaseModelInfo(f"{Path(source).name} (local model)", None, None, None, None)


def _get(d: Mapping[str, Any], dotted: str, default: Any = None) -> Any:
    cur: Any = d
    for part in dotted.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return default
        cur = cur[part]
    return cur


def _as_list(value: Any) -> list[Any] | None:
    """Header values are strings: JSON lists (what export writes), or 'a;b' / 'a, b' text written by hand."""
    if value is None or value == "":
        return None
    if isinstance(value, (list, tuple)):
        return list(value)
    text = str(value)
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        return [part.strip() for part in re.split(r"[;,]", text) if part.strip()]
    return parsed if isinstance(parsed, list) else [parsed]


def _text(value: Any) -> str | None:
    # Falsy means not recorded (0 steps, 0.0 probability, ""): the card omits those rows.
    return str(value) if value else None


def card_facts_from_parts(
    *,
    repo_id: str,
    kind: WeightsKind,
    files: Sequence[str],
    config: Mapping[str, Any],
    weights_metadata: Mapping[str, str],
    samples: Sequence[CardSample | tuple[str, str]],
    trigger_word: str | None,
    samples_step: int | None = None,
    output_dir: Path | None = None,
) -> CardFacts:
    """Facts from already-read pieces. The config wins over the header, except for what only the run knows at its
    end (steps actually trained, buckets actually used), which the header records."""
    meta = weights_metadata
    source = _get(config, "model.model_source") or meta.get("base_model") or meta.get("model_source") or None
    accum = _get(config, "optimization.gradient_accumulation_steps")
    return CardFacts(
        repo_id=repo_id,
        kind=kind,
        files=tuple(files),
        output_dir=output_dir,
        base_model_source=source,
        base_model_on_disk=bool(source) and Path(source).exists(),
        trigger_word=trigger_word or meta.get("trigger_word") or None,
        steps=_text(meta.get("training_steps") or meta.get("steps") or _get(config, "optimization.steps")),
        learning_rate=_text(_get(config, "optimization.learning_rate") or meta.get("learning_rate")),
        rank=_text(_get(config, "lora.rank") or meta.get("rank")),
        alpha=_text(_get(config, "lora.alpha") or meta.get("alpha")),
        target_modules=tuple(
            str(t) for t in _as_list(_get(config, "lora.target_modules") or meta.get("target_modules")) or ()
        ),
        batch_size=_text(_get(config, "optimization.batch_size") or meta.get("batch_size")),
        accumulation_steps=int(accum) if accum else None,
        resolution_buckets=tuple(
            str(b) for b in _as_list(meta.get("resolution_buckets") or _get(config, "data.resolution_buckets")) or ()
        ),
        conditioning_mode=_get(config, "conditioning.mode"),
        first_frame_p=_text(_get(config, "conditioning.first_frame_conditioning_p")),
        samples=tuple(s if isinstance(s, CardSample) else CardSample(*s) for s in samples),
        samples_step=samples_step,
        config=dict(config),
        weights_metadata=dict(meta),
    )


def collect_card_facts(
    output_dir: str | Path, *, repo_id: str, config: Any = None, trigger_word: str | None = None
) -> CardFacts:
    """Read a finished output folder once. ``config`` (a TrainerConfig or dict) replaces the folder's
    training_config.yaml; ``trigger_word`` replaces the one in the weights header. Raises HubError when the folder
    has no final weights."""
    output_dir = Path(output_dir)
    kind, weight_files = find_weight_files(output_dir)
    cfg = config_dict(output_dir, config)
    prompts = _get(cfg, "validation.prompts") or []
    samples = last_validation_samples(output_dir, prompts if isinstance(prompts, list) else None)
    return card_facts_from_parts(
        repo_id=repo_id,
        kind=kind,
        files=[p.name for p in weight_files],
        config=cfg,
        weights_metadata=weights_metadata(weight_files[0]),
        samples=[CardSample(s.path_in_repo, s.prompt, s.path) for s in samples],
        trigger_word=trigger_word,
        samples_step=samples[0].step if samples else None,
        output_dir=output_dir,
    )
