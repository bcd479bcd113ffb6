"""PrecomputeConfig: every preprocessing option, stated once.

The PrecomputeLatents node's widgets (defaults, ranges, tooltips), the ``preprocess_dataset.py`` flags (defaults,
help, choices) and the options table of docs/preprocessing.md are all derived from the fields below, the way the
training side derives its widgets from :class:`ltx_train_lib.config.TrainerConfig`. Field names are the keyword
names of :func:`ltx_train_lib.precompute.preprocess_dataset`; the command-line flag of a field is ``--<name with
dashes>`` unless its ``json_schema_extra["cli"]`` names the reference trainer's flags (see :func:`cli_flags`).

Validation here is cheap and touches neither the disk nor a model: the dataset file, the model source and the
device are checked when a run starts, where the message can name what was found.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from ltx_train_lib.buckets import Bucket, parse_buckets
from ltx_train_lib.config import DEFAULT_TEXT_ENCODING, ModelConfig, TextEncoding
from ltx_train_lib.errors import ConfigError

ReshapeMode = Literal["center", "random"]
FrameSelection = Literal["first", "center", "random"]
RESHAPE_MODES: tuple[str, ...] = get_args(ReshapeMode)
FRAME_SELECTIONS: tuple[str, ...] = get_args(FrameSelection)
TEXT_ENCODINGS: tuple[str, ...] = get_args(TextEncoding)
# Preprocess with the model you train with: the two defaults are one value.
DEFAULT_MODEL_SOURCE: str = ModelConfig.model_fields["model_source"].default
AUTO_DEVICE = "auto"


class PrecomputeConfig(BaseModel):
    """One preprocessing run: which dataset, how clips become latents and captions become embeddings, where to."""

    # Unknown keys are mistakes (typos, stale names): rejected, with a "did you mean" (see format_errors).
    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())

    dataset_file: str = Field(
        ...,
        description="The caption file (.json, .jsonl, .csv, or .txt: a pair <stem>_captions.txt and "
        "<stem>_paths.txt), or a folder holding captions.json or dataset.json. Each entry has a caption and a media "
        "path relative to the caption file.",
        json_schema_extra={"cli": ["dataset"], "metavar": "DATASET"},
    )
    resolution_buckets: str = Field(
        ...,
        description="One or more WIDTHxHEIGHTxFRAMES, separated by ';' (e.g. 768x448x89;512x512x49;768x768x1). W and H "
        "must be multiples of 32; FRAMES must be 8k+1 (1, 9, 17, ..., 121), 1 for images. Each clip goes to the bucket "
        "with the most frames it can fill, then the closest aspect ratio.",
    )
    caption_column: str = Field("caption", description="The column (or key) of the caption file that holds the captions.")
    media_column: str = Field(
        "media_path",
        description="The column (or key) of the caption file that holds the media paths.",
        json_schema_extra={"cli": ["--video-column", "--media-column"]},
    )
    output_dir: str | None = Field(
        None,
        description="Where the cache is written.",
        json_schema_extra={"default_text": "the .precomputed folder beside the caption file"},
    )
    model_source: str = Field(
        DEFAULT_MODEL_SOURCE,
        description="Where the VAE and the text encoder come from: a named version (e.g. LTXV_2B_0.9.6_DEV), a local "
        "diffusers folder, a .safetensors file, a Hugging Face repo id, or 'tiny' (random weights, for tests only). "
        "Train with the same model.",
    )
    text_encoder_path: str | None = Field(
        None,
        description="A T5 text encoder to use instead of the model source's: a single .safetensors file (e.g. from "
        "ComfyUI's models/text_encoders) or a folder.",
        json_schema_extra={"default_text": "the model source's"},
    )
    tokenizer_path: str | None = Field(
        None,
        description="A T5 tokenizer folder to use instead of the model source's.",
        json_schema_extra={"default_text": "the model source's"},
    )
    vae_path: str | None = Field(
        None,
        description="A VAE to use instead of the model source's: a single .safetensors file (e.g. from ComfyUI's "
        "models/vae) or a diffusers folder.",
        json_schema_extra={"default_text": "the model source's"},
    )
    audio_vae_path: str | None = Field(
        None,
        description="LTX-2 only: the audio VAE + vocoder file (ComfyUI's models/vae LTX2_audio_vae*.safetensors) when "
        "neither the model source nor vae_path holds them.",
        json_schema_extra={"default_text": "the model source's"},
    )
    id_token: str | None = Field(
        None,
        description="Trigger word put in front of every caption, as '<token> caption' (e.g. 'zxq'); use it in prompts "
        "to call up what was learned. It is not written to the caption file.",
    )
    remove_llm_prefixes: bool = Field(
        False, description="Remove one leading phrase such as 'The video shows' or 'In this video,' from each caption."
    )
    text_encoding: TextEncoding = Field(
        DEFAULT_TEXT_ENCODING,
        description="How captions are run through T5: 'comfyui' with the attention mask over the caption's tokens, as "
        "ComfyUI's LTXV text encoder (and Lightricks' pipeline, diffusers' LTXConditionPipeline) feed the model; "
        "'reference' without it, as the reference trainer did. Switching recomputes only the caption embeddings. "
        "Train with the same value (data.text_encoding).",
    )
    reshape_mode: ReshapeMode = Field(
        "center", description="Where to crop after the aspect-preserving resize to the bucket: center or random."
    )
    frame_selection: FrameSelection = Field(
        "first",
        description="Which frames to keep from a clip that is longer than its bucket: the first ones (as the "
        "reference), the middle ones, or a random window.",
    )
    seed: int = Field(
        42,
        description="Seed for latent sampling, random crops and random frame picks. Each sample gets its own seed, "
        "derived from this one and its media path.",
    )
    batch_size: int = Field(1, ge=1, description="Samples per text-encoder call and per VAE call; a VAE batch never mixes buckets.")
    device: str | None = Field(
        None,
        description="Where encoding runs: a torch device such as cuda, cuda:1 or cpu; 'auto' picks CUDA when available.",
        json_schema_extra={"default_text": "auto (CUDA if available)"},
    )
    vae_tiling: bool = Field(False, description="Encode in tiles: less GPU memory at large resolutions, slower.")
    load_text_encoder_in_8bit: bool = Field(
        False, description="Load T5 in 8-bit through bitsandbytes (CUDA only): about half the memory."
    )
    decode_videos: bool = Field(
        False,
        description="Also decode every latent to decoded_videos/ (.mp4, or .png for 1-frame samples) to check crops "
        "and quality by eye.",
    )
    reference_column: str | None = Field(
        None,
        description="IC-LoRA: the column holding each sample's reference video (e.g. reference_path, as "
        "compute_condition.py writes). Each reference is encoded at its target's bucket, frames and crop into "
        "reference_latents/; a sample without a usable reference is skipped.",
    )

    # ------------------------------------------------------------------------------------------------ validators

    @field_validator(
        "dataset_file", "output_dir", "model_source", "text_encoder_path", "tokenizer_path", "vae_path", "audio_vae_path", mode="before"
    )
    @classmethod
    def _path_to_str(cls, v: Any) -> Any:
        return str(v) if isinstance(v, Path) else v

    @field_validator("resolution_buckets", mode="before")
    @classmethod
    def _buckets(cls, v: Any) -> Any:
        """Text, a list of 'WxHxF' strings or of Buckets, stored as the canonical 'WxHxF;WxHxF' text."""
        if isinstance(v, (list, tuple)):
            v = [str(b) if isinstance(b, Bucket) else b for b in v]
        elif not isinstance(v, str):
            return v  # pydantic reports the wrong type
        try:
            return ";".join(str(b) for b in parse_buckets(v))
        except ConfigError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("id_token", "reference_column", "text_encoder_path", "tokenizer_path", "vae_path", "audio_vae_path",
                     "output_dir")
    @classmethod
    def _blank_is_unset(cls, v: str | None, info: ValidationInfo) -> str | None:
        # Widgets and flags can only send text: an empty field means "not set", as None does.
        if v is None or not v.strip():
            return None
        # A token or a column name never means its surrounding spaces; a path is kept exactly as given.
        return v.strip() if info.field_name in ("id_token", "reference_column") else v

    @field_validator("device")
    @classmethod
    def _auto_device(cls, v: str | None) -> str | None:
        if v is None or v.strip().lower() in ("", AUTO_DEVICE):
            return None
        return v.strip()

    @field_validator("dataset_file")
    @classmethod
    def _dataset_given(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("is empty; give a caption file (.json/.jsonl/.csv/.txt) or a folder holding captions.json")
        return v

    @field_validator("caption_column", "media_column")
    @classmethod
    def _column_given(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("is empty; name the column of the caption file (the defaults are caption and media_path)")
        return v.strip()

    # ------------------------------------------------------------------------------------------------ helpers

    @property
    def buckets(self) -> list[Bucket]:
        return parse_buckets(self.resolution_buckets)

    @classmethod
    def from_options(cls, options: Mapping[str, Any], names: Mapping[str, str] | None = None) -> PrecomputeConfig:
        """Validate ``options``; a bad one raises a ConfigError whose message names it as ``names`` calls it (a
        flag, a widget) or, without ``names``, by its field name in words ("batch size")."""
        try:
            return cls.model_validate(dict(options))
        except ValidationError as err:
            raise ConfigError(format_errors(err, names)) from None


# --------------------------------------------------------------------------------------------------- derivation


def field_extra(name: str) -> dict[str, Any]:
    extra = PrecomputeConfig.model_fields[name].json_schema_extra
    return dict(extra) if isinstance(extra, dict) else {}


def cli_flags(name: str) -> list[str]:
    """The command-line spelling of a field: the reference trainer's flag names where it has them (a name without
    dashes is a positional argument), else ``--<name with dashes>``."""
    return list(field_extra(name).get("cli") or [f"--{name.replace('_', '-')}"])


def cli_names() -> dict[str, str]:
    """Each field as the command line spells it (its first flag, or the positional's metavar), for error messages
    that name what the user typed."""
    names = {}
    for name in PrecomputeConfig.model_fields:
        flag = cli_flags(name)[0]
        names[name] = flag if flag.startswith("-") else str(field_extra(name).get("metavar", flag.upper()))
    return names


def default_text(name: str) -> str:
    """A field's default in words, for help texts and the docs table: the value, or the field's ``default_text``
    where None stands for something (a folder derived from another option, "the model source's")."""
    info = PrecomputeConfig.model_fields[name]
    if info.is_required():
        return "required"
    if "default_text" in field_extra(name):
        return str(field_extra(name)["default_text"])
    value = info.get_default(call_default_factory=True)
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def format_errors(err: ValidationError, names: Mapping[str, str] | None = None) -> str:
    """One line per bad option: its name, its value, the problem and the fix."""

    def label(field: str) -> str:
        if names is not None and field in names:
            return names[field]
        return field.replace("_", " ")

    lines: list[str] = []
    for e in err.errors():
        field = str(e["loc"][0]) if e["loc"] else "(options)"
        value = e.get("input")
        ctx = e.get("ctx") or {}
        kind = e["type"]
        if kind == "extra_forbidden":
            hint = difflib.get_close_matches(field, list(PrecomputeConfig.model_fields), n=1)
            fix = f"did you mean '{hint[0]}'?" if hint else "remove it (see PrecomputeConfig for the options)"
            lines.append(f"unknown preprocessing option '{(names or {}).get(field, field)}': {fix}")
        elif kind == "missing":
            what = str(PrecomputeConfig.model_fields[field].description)
            lines.append(f"{label(field)}: missing; give {what[:1].lower()}{what[1:]}")
        elif kind == "literal_error":
            options = ", ".join(get_args(PrecomputeConfig.model_fields[field].annotation))
            lines.append(f"{label(field)} {value!r}: use one of {options}")
        elif kind in ("greater_than_equal", "greater_than"):
            bound = ctx.get("ge", ctx.get("gt"))
            lines.append(f"{label(field)} {value!r}: must be {'at least' if kind.endswith('equal') else 'more than'} {bound}")
        elif kind in ("int_parsing", "int_type", "int_from_float"):
            lines.append(f"{label(field)} {value!r}: must be a whole number")
        elif kind in ("bool_parsing", "bool_type"):
            lines.append(f"{label(field)} {value!r}: must be true or false")
        elif kind == "value_error":
            lines.append(f"{label(field)}: {str(e['msg']).removeprefix('Value error, ')}")
        else:
            lines.append(f"{label(field)} {value!r}: {e['msg']}")
    return lines[0] if len(lines) == 1 else "invalid preprocessing options:\n" + "\n".join(f"  - {line}" for line in lines)


def config_defaults() -> dict[str, Any]:
    """Every optional field's default (the required ones have none)."""
    return {
        name: info.get_default(call_default_factory=True)
        for name, info in PrecomputeConfig.model_fields.items()
        if not info.is_required()
    }


__all__ = [
    "AUTO_DEVICE",
    "DEFAULT_MODEL_SOURCE",
    "FRAME_SELECTIONS",
    "RESHAPE_MODES",
    "TEXT_ENCODINGS",
    "PrecomputeConfig",
    "cli_flags",
    "cli_names",
    "config_defaults",
    "default_text",
    "format_errors",
]
