"""PrecomputeLatents: text embeddings and VAE latents of a captioned dataset into ``.precomputed/``.

The node's settings widgets are fields of :class:`ltx_train_lib.precompute.PrecomputeConfig` (defaults, ranges,
choices and tooltips come from it, see ``_SCHEMA_WIDGETS``); the node builds that config and calls the library's
``preprocess_dataset`` with it, exactly as ``preprocess_dataset.py`` does.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import comfy
from . import types as T
from .dataset import datasets_dir, folder_signature, slug
from .schema_widgets import (
    FROM_MODEL,
    OptionsNode,
    component_widget,
    field_default,
    from_widget,
    model_path_widget,
    model_widget,
    resolve_component,
    resolve_model,
    schema_widget,
    widget_defaults,
)

if TYPE_CHECKING:
    from ltx_train_lib.precompute import PrecomputeConfig

DEVICES = ("auto", "cuda", "cpu")
MAX_PREVIEWS = 8


def dataset_fingerprint(precomputed_dir: Path) -> str:
    """Changes when any cached sample's inputs change (media bytes, prompt, bucket, encoders): a training job on a
    changed dataset is a new job, not a resume of the old one."""
    from ltx_train_lib.precompute import MANIFEST_NAME, Manifest

    manifest = Manifest.load(precomputed_dir / MANIFEST_NAME)
    summary = {
        key: [
            (entry.get("latent") or {}).get("key"),
            (entry.get("condition") or {}).get("key"),
            (entry.get("media") or {}).get("sha256"),
        ]
        for key, entry in manifest.samples.items()
    }
    return hashlib.sha256(json.dumps(summary, sort_keys=True).encode()).hexdigest()[:16]


def decoded_previews(precomputed_dir: Path) -> dict[str, list]:
    """The decoded latents (videos, or PNGs for one-frame buckets) as UI previews."""
    from ltx_train_lib.precompute import DECODED_DIR

    folder = precomputed_dir / DECODED_DIR
    if not folder.is_dir():
        return {}
    videos = sorted(p for p in folder.rglob("*.mp4") if not p.name.startswith("."))[:MAX_PREVIEWS]
    if videos:
        return comfy.ui_videos([comfy.preview_entry(p) for p in videos])
    images = sorted(p for p in folder.rglob("*.png") if not p.name.startswith("."))[:MAX_PREVIEWS]
    return comfy.ui_images([comfy.preview_entry(p) for p in images]) if images else {}


def _cache_dir_for(captions_file: Path, name: str) -> Path:
    """Next to the caption file when that lies in the output folder (the reference's layout); otherwise in this
    pack's datasets folder, so nothing is written into ComfyUI's input folder."""
    from ltx_train_lib.precompute import PRECOMPUTED_DIR

    folder = captions_file.resolve().parent
    if folder.is_relative_to(comfy.output_dir().resolve()):
        return folder / PRECOMPUTED_DIR
    return datasets_dir() / slug(name or folder.name) / PRECOMPUTED_DIR


# Widgets that are PrecomputeConfig fields: (widget name, field, widget options beyond the schema's), in widget order.
# Widget names differ from field names where ComfyUI or the node's users expect another: "trigger_word" is what
# the field (the reference's id_token) is called in the UI, and a widget named "seed" would get the editor's
# "randomize after each run" control (a new seed recomputes every latent).
_SCHEMA_WIDGETS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("trigger_word", "id_token", {}),
    ("remove_llm_prefixes", "remove_llm_prefixes", {}),
    ("decode_videos", "decode_videos", {"tooltip_extra": "The node shows them."}),
    ("vae_tiling", "vae_tiling", {}),
    ("reshape_mode", "reshape_mode", {}),
    ("frame_selection", "frame_selection", {}),
    ("batch_size", "batch_size", {"max": 64}),  # a slider range for the UI; the library takes any size
    ("load_text_encoder_in_8bit", "load_text_encoder_in_8bit", {}),
    ("precompute_seed", "seed", {"min": 0}),  # the library takes any int; the UI keeps to ComfyUI's seed range
    ("device", "device", {"choices": DEVICES}),
)
# The other widgets and inputs that feed a PrecomputeConfig field, for error messages that name the widget.
_OTHER_INPUTS = {
    "dataset_file": "dataset",
    "resolution_buckets": "resolution_buckets",
    "model_source": "model",
    "text_encoder_path": "text_encoder",
    "vae_path": "vae",
    "audio_vae_path": "audio_vae",
}
# A bucket a fresh node starts with (the schema has no default: the command line requires --resolution-buckets).
DEFAULT_BUCKETS = "768x768x49"


def _widget_names() -> dict[str, str]:
    names = {field: f"PrecomputeLatents.{widget}" for widget, field, _ in _SCHEMA_WIDGETS}
    return {**names, **{field: f"PrecomputeLatents.{widget}" for field, widget in _OTHER_INPUTS.items()}}


def in_widget_terms(text: str) -> str:
    """A library message about preprocessing options as the node's user sees them: the command-line flags it names
    (e.g. ``--resolution-buckets``, in the reasons a clip was skipped) become the node's widget names."""
    from ltx_train_lib.precompute.config import cli_names

    widgets = _widget_names()
    for field, flag in sorted(cli_names().items(), key=lambda item: -len(item[1])):
        if field in widgets and flag.startswith("--"):
            text = re.sub(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", widgets[field], text)
    return text


def build_config(
    values: dict[str, Any],
    captions_file: Path,
    cache_dir: Path,
    model_source: str,
    text_encoder_path: str | None = None,
    vae_path: str | None = None,
    audio_vae_path: str | None = None,
) -> PrecomputeConfig:
    """The run's :class:`PrecomputeConfig` from the node's widget values; a bad value raises a ConfigError naming
    the widget (e.g. ``PrecomputeLatents.resolution_buckets``)."""
    from ltx_train_lib.precompute import PrecomputeConfig

    options: dict[str, Any] = {
        field: from_widget(PrecomputeConfig, field, values[widget]) for widget, field, _ in _SCHEMA_WIDGETS
    }
    options.update(
        dataset_file=str(captions_file),
        resolution_buckets=values["resolution_buckets"],
        output_dir=str(cache_dir),
        model_source=model_source,
        text_encoder_path=text_encoder_path,
        vae_path=vae_path,
        audio_vae_path=audio_vae_path,
    )
    return PrecomputeConfig.from_options(options, names=_widget_names())


def all_settings_inputs() -> dict[str, dict[str, Any]]:
    """The all-settings PrecomputeLatents node's inputs (``required`` in saved-workflow order, ``optional``)."""
    from ltx_train_lib.precompute import PrecomputeConfig as C

    def describe(field: str, extra: str) -> str:
        return f"{C.model_fields[field].description} {extra}"

    schema = {widget: schema_widget(C, field, **opts) for widget, field, opts in _SCHEMA_WIDGETS}
    return {
        "required": {
            "dataset": schema_widget(
                C,
                "dataset_file",
                default="",
                tooltip_extra="Used when 'captions' is not connected; relative to ComfyUI's input folder.",
            ),
            "resolution_buckets": schema_widget(C, "resolution_buckets", default=DEFAULT_BUCKETS),
            "model": model_widget(C.model_fields["model_source"].description or "", default=field_default(C, "model_source")),
            "model_path": model_path_widget(),
            **schema,
            "dataset_name": (
                "STRING",
                {
                    "default": "",
                    "tooltip": "Work folder name for a dataset typed into 'dataset' (its cache goes to "
                    "output/ltx_trainer/datasets/<name>/); empty = the dataset folder's name.",
                },
            ),
        },
        "optional": {
            "captions": (T.CAPTIONS, {"tooltip": "Captions from Qwen Caption; replaces 'dataset' when connected."}),
            "text_encoder": component_widget(
                "text_encoders", describe("text_encoder_path", "Pick a file of models/text_encoders, or '(from model)'.")
            ),
            "vae": component_widget("vae", describe("vae_path", "Pick a file or folder of models/vae, or '(from model)'.")),
            # Last: saved workflows keep their widget order.
            "audio_vae": component_widget(
                "vae", describe("audio_vae_path", "Pick the LTX-2 audio VAE file of models/vae, or '(from model)'.")
            ),
        },
    }


# What the compact node shows: where the data comes from, its sizes, the model and the trigger word. The rest comes
# from a Precompute Options node (its widgets are the all-settings node's others, same defaults and order).
COMPACT_WIDGETS = ("dataset", "resolution_buckets", "model", "trigger_word")


def option_widgets() -> dict[str, Any]:
    inputs = all_settings_inputs()
    widgets = {**inputs["required"], **{k: v for k, v in inputs["optional"].items() if k != "captions"}}
    return {k: v for k, v in widgets.items() if k not in COMPACT_WIDGETS}


def option_defaults() -> dict[str, Any]:
    return widget_defaults(option_widgets())


class _PrecomputeNode:
    """What both PrecomputeLatents nodes do with their values."""

    CATEGORY = "LTX Trainer/dataset"
    RETURN_TYPES = (T.DATASET,)
    RETURN_NAMES = ("dataset",)
    OUTPUT_TOOLTIPS = ("The precomputed dataset, ready for Train LoRA.",)
    FUNCTION = "precompute"
    SEARCH_ALIASES = ["precompute", "preprocess dataset", "encode latents", "cache latents", "vae encode dataset",
                      "text embeddings", "audio latents"]

    @classmethod
    def IS_CHANGED(cls, dataset: str = "", **_: Any) -> str:
        if not (dataset or "").strip():
            return ""  # fed by a Qwen Caption node: its own changes propagate
        try:
            from ltx_train_lib.precompute import resolve_dataset_file

            captions = resolve_dataset_file(comfy.resolve_input(dataset, "dataset"))
            st = captions.stat()
            return f"{captions}|{st.st_size}|{st.st_mtime_ns}|{folder_signature(captions.parent, True)}"
        except Exception as exc:  # noqa: BLE001 - the node itself reports the problem when it runs
            return f"error: {exc}"

    def _precompute(self, values: dict[str, Any], captions: T.CaptionSet | None, unique_id: str | None):
        from ltx_train_lib.errors import DatasetError, LtxTrainError
        from ltx_train_lib.precompute import preprocess_dataset, resolve_dataset_file

        dataset, dataset_name = values["dataset"], values["dataset_name"]
        model, model_path = values["model"], values["model_path"]
        text_encoder, vae = values.get("text_encoder", FROM_MODEL), values.get("vae", FROM_MODEL)
        audio_vae = values.get("audio_vae", FROM_MODEL)

        if captions is not None:
            captions_file, name = captions.captions_file, captions.name
            cache_dir = captions.work_dir / ".precomputed"
        elif dataset.strip():
            captions_file = resolve_dataset_file(comfy.resolve_input(dataset, "PrecomputeLatents.dataset"))
            name = dataset_name.strip() or captions_file.resolve().parent.name
            cache_dir = _cache_dir_for(captions_file, dataset_name.strip())
        else:
            raise DatasetError(
                "PrecomputeLatents: no data: connect 'captions' (from Qwen Caption) or type a caption file / dataset "
                "folder into 'dataset'"
            )
        model_source = resolve_model(model, model_path, "PrecomputeLatents.model")
        widgets = {w: values[w] for w in ("resolution_buckets", *(w for w, _, _ in _SCHEMA_WIDGETS))}
        config = build_config(
            widgets,
            captions_file,
            cache_dir,
            model_source,
            text_encoder_path=resolve_component("text_encoders", text_encoder, "PrecomputeLatents.text_encoder"),
            vae_path=resolve_component("vae", vae, "PrecomputeLatents.vae"),
            audio_vae_path=resolve_component("vae", audio_vae, "PrecomputeLatents.audio_vae"),
        )
        bar = comfy.Progress(1, unique_id, "precompute")

        def progress(done: int, total: int, message: str) -> None:
            bar.update(done, total)
            comfy.progress_text(f"{done}/{total} {message}", unique_id)
            comfy.throw_if_interrupted()  # every finished file is kept (atomic writes); a re-run reuses it

        comfy.unload_models()
        try:
            result = preprocess_dataset(config, progress=progress)
        except LtxTrainError as exc:  # the library's messages name its command-line flags; here they are widgets
            named = in_widget_terms(str(exc))
            if named != str(exc):
                raise type(exc)(named) from exc
            raise
        finally:
            comfy.free_memory()
        if result.samples == 0:
            reasons = "; ".join(f"{k}: {r}" for k, r in result.skipped[:3]) or "the caption file lists no media"
            raise DatasetError(in_widget_terms(
                f"PrecomputeLatents: no sample could be encoded ({reasons}); fix the dataset or "
                "PrecomputeLatents.resolution_buckets"
            ))
        record = T.PrecomputedSet(
            precomputed_dir=result.output_dir,
            captions_file=captions_file,
            model_source=model_source,
            buckets=tuple(str(b) for b in config.buckets),
            samples=result.samples,
            fingerprint=dataset_fingerprint(result.output_dir),
            trigger_word=config.id_token,
            name=name,
        )
        ui = {**decoded_previews(result.output_dir), **comfy.ui_text(in_widget_terms(result.summary()), unique_id)}
        return {"ui": ui, "result": (record,)}


class PrecomputeLatents(_PrecomputeNode):
    """Encode captions (text encoder), clips (VAE) and their sound (audio VAE, LTX-2) once, so training reads small
    tensors: the data, sizes, model and trigger word as widgets, the rest from an optional Precompute Options node."""

    DESCRIPTION = (
        "Computes the text embeddings and VAE latents (and, for LTX-2, the audio latents of clips with sound) of every "
        "captioned clip into .precomputed/ (the reference trainer's layout). Only changed samples are recomputed; bad "
        "clips are skipped with a reason. Takes the captions of a Qwen Caption node, or an existing caption file / "
        "dataset folder typed into 'dataset'. Other settings (device, batch size, VAE tiling, frame selection, "
        "component files...) come from a Precompute Options node connected to 'options'."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        inputs = all_settings_inputs()
        return {
            "required": {k: inputs["required"][k] for k in COMPACT_WIDGETS},
            "optional": {
                "captions": inputs["optional"]["captions"],
                "options": (T.PRECOMPUTE_OPTIONS, {"tooltip": (
                    "Every other encoding setting, from a Precompute Options node; unconnected = that node's "
                    "defaults.")}),
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    def precompute(self, captions: T.CaptionSet | None = None, options: dict[str, Any] | None = None,
                   unique_id: str | None = None, **values: Any):
        return self._precompute({**option_defaults(), **(options or {}), **values}, captions, unique_id)


class PrecomputeOptions(OptionsNode):
    """Every encoding setting the compact PrecomputeLatents node does not show, for its 'options' input."""

    CATEGORY = "LTX Trainer/dataset"
    SEARCH_ALIASES = ["precompute options", "encoding options", "vae tiling", "preprocess options"]
    DESCRIPTION = (
        "The rest of PrecomputeLatents' settings (model path, text encoder and VAE files, device, batch size, VAE "
        "tiling, reshape mode, frame selection, 8-bit text encoder, seed, decoded previews, work folder name). "
        "Defaults, ranges and help come from the preprocessing schema."
    )
    RETURN_TYPES = (T.PRECOMPUTE_OPTIONS,)
    OUTPUT_TOOLTIPS = ("Settings for Precompute Latents' 'options' input.",)
    widgets = staticmethod(option_widgets)


class PrecomputeLatentsAllSettings(_PrecomputeNode):
    """The first release's PrecomputeLatents, every setting a widget: kept so saved workflows load and run unchanged."""

    DEPRECATED = True  # hidden from the node search; saved workflows still load it
    SEARCH_ALIASES: list[str] = []
    DESCRIPTION = (
        "Precompute Latents with every setting as a widget (the first release's node, kept for saved workflows). New "
        "graphs: use Precompute Latents with a Precompute Options node; the same settings give the same cache."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {**all_settings_inputs(), "hidden": {"unique_id": "UNIQUE_ID"}}

    def precompute(self, captions: T.CaptionSet | None = None, unique_id: str | None = None, **values: Any):
        return self._precompute({"text_encoder": FROM_MODEL, "vae": FROM_MODEL, **values}, captions, unique_id)
