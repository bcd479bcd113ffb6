"""The Hub model card: ``CardFacts`` -> README.md markdown, through ltx_train_lib/templates/model_card.md.

Rendering depends on the facts alone (no output folder, network or clock; only the template is read): the facts are collected once by ``collect_card_facts`` and the
family-specific text (diffusers snippet, ComfyUI steps, base model, licence) comes from ``family_card_text``, the one
call into model-family code. Everything else here is the same for every family.
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, overload

from ltx_train_lib.hub.facts import (
    BaseModelInfo,
    CardFacts,
    CardSample,
    FamilyCardText,
    card_facts_from_parts,
    collect_card_facts,
)
from ltx_train_lib.hub.folder import FULL_FILES, LORA_FILES, WeightsKind

__all__ = ["CardFacts", "collect_card_facts", "family_card_text", "render_model_card"]

GRID_COLUMNS = 4
PROJECT_LINK = "[ComfyUI-LTX-Trainer](https://github.com/ltx-trainer/ComfyUI-LTX-Trainer)"
_TEMPLATE = Path(__file__).resolve().parent.parent / "templates" / "model_card.md"


def family_card_text(facts: CardFacts) -> FamilyCardText:
    """The model family's part of the card: the family that trained the weights (their ``model_family`` header),
    else the family of the config's ``model.model_source``."""
    from ltx_train_lib.models.registry import family_for_source, get_family

    name = facts.weights_metadata.get("model_family")
    family = get_family(name) if name else family_for_source(facts.base_model_source or "")
    return family.card_text(facts)


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ").replace("<", "&lt;").replace(">", "&gt;")


def _front_matter(facts: CardFacts, family: FamilyCardText) -> str:
    import yaml

    front: dict[str, Any] = {}
    if family.base_model.hub_id:
        front["base_model"] = family.base_model.hub_id
        front["base_model_relation"] = "adapter" if facts.is_lora else "finetune"
    first, *rest = family.tags
    front.update(
        {
            "library_name": "diffusers",
            "license": family.licence,
            "language": ["en"],
            "pipeline_tag": "text-to-video",
            "tags": [first, "lora" if facts.is_lora else "full-fine-tune", *rest],
        }
    )
    if facts.trigger_word:
        front["instance_prompt"] = facts.trigger_word
    if facts.samples:
        front["widget"] = [
            {"text": s.prompt or facts.model_name, "output": {"url": s.path_in_repo}} for s in facts.samples
        ]
    return yaml.safe_dump(front, sort_keys=False, allow_unicode=True).strip()


def _settings_table(facts: CardFacts) -> str:
    rows = [("Training type", "LoRA" if facts.is_lora else "Full fine-tune")]
    if facts.steps:
        rows.append(("Steps", facts.steps))
    if facts.learning_rate:
        rows.append(("Learning rate", facts.learning_rate))
    if facts.is_lora and facts.rank:
        rows.append(("LoRA rank", facts.rank))
    if facts.is_lora and facts.alpha:
        rows.append(("LoRA alpha", facts.alpha))
    if facts.is_lora and facts.target_modules:
        rows.append(("Target modules", ", ".join(f"`{t}`" for t in facts.target_modules)))
    if facts.batch_size:
        accum = facts.accumulation_steps
        accumulation = f" × {accum} accumulation steps" if accum and accum > 1 else ""
        rows.append(("Batch size", f"{facts.batch_size}{accumulation}"))
    if facts.resolution_buckets:
        rows.append(("Resolution buckets (WxHxF)", ", ".join(facts.resolution_buckets)))
    if facts.conditioning_mode == "reference_video":
        rows.append(("Conditioning", "IC-LoRA (reference video)"))
    elif facts.first_frame_p:
        rows.append(("First-frame conditioning probability", facts.first_frame_p))
    return "| Setting | Value |\n| --- | --- |\n" + "\n".join(f"| {k} | {_md_escape(v)} |" for k, v in rows)


def _base_model_section(facts: CardFacts, base: BaseModelInfo) -> str:
    link = f"[{base.name}]({base.link})" if base.link else base.name
    section = f"- Model: {link}\n- Version: {base.version or 'see the model name'}"
    if facts.base_model_source and base.hub_id is None:
        section += "\n- Trained from a local copy; load the same weights to use this model."
    return section


def _trigger_section(facts: CardFacts) -> str:
    if facts.trigger_word:
        return f"## Trigger word\n\nInclude `{facts.trigger_word}` in your prompt to activate what this model learned."
    return "## Trigger word\n\nNo trigger word was recorded; describe the subject as the training captions did."


def _comfyui_section(facts: CardFacts, family: FamilyCardText) -> str:
    # The ComfyUI-keyed file is this project's export, whatever the family: say how to make it when it is missing.
    text = family.comfyui_instructions
    if facts.is_lora and LORA_FILES[1] not in facts.files:
        text += (
            "\n\nThis repository has no ComfyUI file; make one with "
            f"`python scripts/convert_checkpoint.py {LORA_FILES[0]} --to-comfy`."
        )
    elif not facts.is_lora and FULL_FILES[1] not in facts.files:
        text += (
            f"\n\nThis repository only has the diffusers-named `{FULL_FILES[0]}`; convert it with "
            f"`python scripts/convert_checkpoint.py {FULL_FILES[0]} --to-comfy` first."
        )
    return text


def _health_section(facts: CardFacts) -> str:
    if not facts.health:
        return ""
    return (
        f"## Health check\n\n{facts.health}.\n\nEvery tensor of the uploaded weights was scanned before the upload "
        "for NaN/Inf values and for modules that change nothing (ltx_train_lib/lora_health.py)."
    )


def _samples_section(facts: CardFacts) -> str:
    if not facts.samples:
        return ""
    columns = min(GRID_COLUMNS, len(facts.samples))
    cells = [
        f"![sample {i + 1}]({s.path_in_repo})<br>"
        f"<details><summary>Prompt</summary>{_md_escape(s.prompt) or '(not recorded)'}</details>"
        for i, s in enumerate(facts.samples)
    ]
    lines = ["| " + " | ".join([""] * columns) + " |", "| " + " | ".join(["---"] * columns) + " |"]
    for start in range(0, len(cells), columns):
        row = cells[start : start + columns]
        lines.append("| " + " | ".join(row + [""] * (columns - len(row))) + " |")
    when = f" (step {facts.samples_step})" if facts.samples_step is not None else ""
    return f"## Samples\n\nValidation videos from the last round{when}:\n\n" + "\n".join(lines)


def _render(facts: CardFacts) -> str:
    family = family_card_text(facts)
    base = family.base_model
    values = {
        "front_matter": _front_matter(facts, family),
        "model_name": facts.model_name,
        "summary": f"A {'LoRA' if facts.is_lora else 'full fine-tune'} for {base.name}, trained with {PROJECT_LINK}.",
        "base_model_section": _base_model_section(facts, base),
        "settings_table": _settings_table(facts),
        "health_section": _health_section(facts),
        "trigger_section": _trigger_section(facts),
        "comfyui_section": _comfyui_section(facts, family),
        "diffusers_code": family.usage_code,
        "samples_section": _samples_section(facts),
        "files_list": "\n".join(f"- `{name}`" for name in facts.files),
        "licence_section": family.licence_text,
    }
    return string.Template(_TEMPLATE.read_text(encoding="utf-8")).substitute(values)


@overload
def render_model_card(facts: CardFacts, /) -> str: ...


@overload
def render_model_card(
    *,
    repo_id: str,
    kind: WeightsKind,
    files: Sequence[str],
    config: Mapping[str, Any],
    weights_metadata: Mapping[str, str],
    samples: Sequence[CardSample | tuple[str, str]],
    trigger_word: str | None,
    samples_step: int | None = None,
) -> str: ...


def render_model_card(facts: CardFacts | None = None, /, **parts: Any) -> str:
    """README.md text for ``facts``.

    The keyword form is the signature from before facts existed (``samples`` as (path in repo, prompt) pairs,
    ``files`` the uploaded weight file names); it builds the facts from those pieces, then renders the same way.
    """
    if facts is None:
        facts = card_facts_from_parts(**parts)
    elif parts:
        raise TypeError("render_model_card: pass either CardFacts or the keyword pieces, not both")
    return _render(facts)
