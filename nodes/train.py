"""TrainLoRA: train in a spawned ``accelerate launch`` process and follow it from the node.

The node builds a :class:`ltx_train_lib.config.TrainerConfig` from its widgets (defaults, ranges and tooltips come
from that schema), asks ComfyUI to unload its models, starts the job with :mod:`ltx_train_lib.jobs` and turns the
trainer's events into the node's progress bar, a progress text line and ``ltx_trainer.event`` websocket events.
Cancel stops the whole process tree after the trainer's resumable checkpoint; queueing the same job again resumes
it; a finished job returns at once.
"""

from __future__ import annotations

import asyncio  # cheap: ComfyUI runs on asyncio, it is always loaded there
import contextlib
import logging
import re
from pathlib import Path
from typing import Any

from . import comfy
from . import types as T
from .schema_widgets import (
    FROM_DATASET,
    SEED_MAX,
    OptionsNode,
    component_widget,
    field_default,
    from_widget,
    model_path_widget,
    model_widget,
    resolve_component,
    resolve_model,
    schema_widget,
    split_list,
    widget_defaults,
)

log = logging.getLogger("ltx_trainer.nodes")

# The web monitor (web/ltx_trainer_monitor.js NODE_TYPES) attaches to both training nodes.
NODE_TYPE = "LTXTrainer_TrainLoRA_v2"  # the compact node
LEGACY_NODE_TYPE = "LTXTrainer_TrainLoRA"  # all settings as widgets (the first release)
POLL_S = 0.2  # how often events and the Cancel flag are checked
# A step of a big model plus writing its checkpoint can take longer than the library's 20 s default.
CANCEL_TIMEOUT_S = 120.0
EVENT = "ltx_trainer.event"
JOBS_EVENT = "ltx_trainer.jobs"


def _schema_fields() -> list[tuple[str, type, str, dict[str, Any]]]:
    """(widget name, config section class, field name, widget options) in widget order."""
    from ltx_train_lib import config as C

    return [
        ("steps", C.OptimizationConfig, "steps", {}),  # the schema's upper bound (MAX_STEPS)
        ("learning_rate", C.OptimizationConfig, "learning_rate", {"max": 1.0, "step": 1e-6, "round": False}),
        ("rank", C.LoraConfig, "rank", {"max": 1024}),
        ("alpha", C.LoraConfig, "alpha", {"max": 4096}),
        ("dropout", C.LoraConfig, "dropout", {}),
        ("target_modules", C.LoraConfig, "target_modules", {}),
        ("modalities", C.ModelConfig, "modalities", {}),
        ("batch_size", C.OptimizationConfig, "batch_size", {"max": 256}),
        ("gradient_accumulation_steps", C.OptimizationConfig, "gradient_accumulation_steps", {"max": 1024}),
        ("optimizer_type", C.OptimizationConfig, "optimizer_type", {}),
        ("scheduler_type", C.OptimizationConfig, "scheduler_type", {}),
        ("warmup_steps", C.OptimizationConfig, "warmup_steps", {"max": 10_000_000}),
        ("weight_decay", C.OptimizationConfig, "weight_decay", {"max": 10.0, "step": 1e-4, "round": False}),
        ("max_grad_norm", C.OptimizationConfig, "max_grad_norm", {"min": 0.0, "max": 1e6, "step": 0.1}),
        ("enable_gradient_checkpointing", C.OptimizationConfig, "enable_gradient_checkpointing", {}),
        ("first_frame_conditioning_p", C.ConditioningConfig, "first_frame_conditioning_p", {}),
        ("timestep_sampling_mode", C.FlowMatchingConfig, "timestep_sampling_mode", {}),
        ("mixed_precision_mode", C.AccelerationConfig, "mixed_precision_mode", {}),
        ("quantization", C.AccelerationConfig, "quantization", {}),
        ("compile_with_inductor", C.AccelerationConfig, "compile_with_inductor", {}),
        ("validation_prompts", C.ValidationConfig, "prompts", {"multiline": True}),
        ("validation_interval", C.ValidationConfig, "interval", {"max": 10_000_000}),
        ("validation_inference_steps", C.ValidationConfig, "inference_steps", {"max": 1000}),
        ("validation_guidance_scale", C.ValidationConfig, "guidance_scale", {"max": 50.0, "step": 0.1}),
        ("validation_seed", C.ValidationConfig, "seed", {"min": 0, "max": SEED_MAX}),
        ("checkpoint_interval", C.CheckpointsConfig, "interval", {"max": 10_000_000}),
        ("keep_last_n", C.CheckpointsConfig, "keep_last_n", {"max": 10_000}),
        ("num_dataloader_workers", C.DataConfig, "num_dataloader_workers", {"max": 64}),
        # Not "seed": the editor gives INT widgets named seed/noise_seed a "randomize after each run" control, and a
        # new seed would make a new job instead of resuming the old one.
        ("training_seed", C.TrainerConfig, "seed", {"min": 0, "max": SEED_MAX}),
        # After every other widget (TRAILING): saved workflows keep their positional widget values.
        ("memory_budget_gb", C.MemoryConfig, "budget_gb", {"max": 1024.0, "step": 0.5, "tooltip_extra": (
            "0 = no budget. The node checks the plan before starting and refuses a run that cannot fit, naming what "
            "would; 'auto' goes in extra_config (memory: {budget_gb: auto}).")}),
    ]


# Widgets placed after extra_config, the last widget of the first release: new widgets go at the end, so the values a
# saved workflow lists by position still land in the widgets they were meant for.
TRAILING = ("memory_budget_gb",)


# A fresh node's values where they are not the schema's. TrainerConfig keeps the reference trainer's defaults (its
# 13B configs: 3000 steps, 704x480x161 validation videos at 50 steps every 100 steps), which need a far bigger GPU
# than most ComfyUI users have, and long validation rounds. A fresh node instead trains the 2B model on a 24 GB
# card: batch 1 with gradient checkpointing, a few hundred steps, and small validation videos (512x320x49 at 25
# steps) before training, halfway and at the end. Every other widget starts at the schema default
# (tests/test_nodes.py fails on any other difference).
NODE_DEFAULTS: dict[str, Any] = {
    "model": "LTXV_2B_0.9.6_DEV",  # 0.9.5+ releases share the VAE: it fits datasets encoded by the 13B models too
    "steps": 500,
    "batch_size": 1,
    "enable_gradient_checkpointing": True,
    "validation_interval": 250,
    "validation_inference_steps": 25,
    "validation_width": 512,
    "validation_height": 320,
    "validation_frames": 49,
}

_DIM_NAMES = ("validation_width", "validation_height", "validation_frames")
_DIM_LIMITS = ((32, 4096, 32), (32, 4096, 32), (1, 1025, 8))


def _dims_widgets() -> dict[str, Any]:
    from ltx_train_lib.config import ValidationConfig

    dims = field_default(ValidationConfig, "video_dims")
    tip = ValidationConfig.model_fields["video_dims"].description
    out = {}
    for name, value, (lo, hi, step), what in zip(_DIM_NAMES, dims, _DIM_LIMITS, ("width", "height", "frames"), strict=True):
        value = NODE_DEFAULTS.get(name, value)
        out[name] = ("INT", {"default": value, "min": lo, "max": hi, "step": step, "tooltip": f"{tip} This is the {what}."})
    return out


def _section_key(section: type) -> str:
    from ltx_train_lib.config import TrainerConfig, section_classes

    for key, info in TrainerConfig.model_fields.items():
        # A tagged union (conditioning) holds subclasses of the section the widget names.
        if any(issubclass(c, section) for c in section_classes(info.annotation)):
            return key
    raise KeyError(section.__name__)


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _latent_space(source: str) -> str | None:
    """Which VAE's latents a model reads: named LTX-Video releases from 0.9.5 on share one; None when unknown (a
    path or a repo id: not checked)."""
    from ltx_train_lib.models.registry import all_versions, get_family, resolve_source, tiny_sources

    if source not in tiny_sources() and source not in all_versions():
        return None
    resolved = resolve_source(source)
    # The family knows which sources share a VAE (LTX-Video 0.9.5+ one, LTX-2.3 and 2.5 one, ...).
    return get_family(resolved.family).cache_identities(resolved, load_text_encoder_in_8bit=False)[0]


def _check_latents_fit(model_source: str, dataset_source: str) -> None:
    """The model picked in TrainLoRA.model must read the latents the dataset's model wrote (the default model is a
    fixed one, not '(same as dataset)')."""
    from ltx_train_lib.errors import ConfigError

    mine, theirs = _latent_space(model_source), _latent_space(dataset_source)
    if mine is not None and theirs is not None and mine != theirs:
        raise ConfigError(
            f"TrainLoRA.model: '{model_source}' cannot train on this dataset: its latents were encoded with "
            f"'{dataset_source}', whose VAE is another; pick '{FROM_DATASET}' (or '{dataset_source}'), or encode the "
            f"dataset again with PrecomputeLatents.model '{model_source}'"
        )


def build_config(dataset: T.PrecomputedSet, values: dict[str, Any]) -> dict[str, Any]:
    """The training config (as a dict, before validation) for a dataset and the node's widget values."""
    from ltx_train_lib.config import TrainerConfig
    from ltx_train_lib.errors import ConfigError

    cfg: dict[str, Any] = {"model": {"training_mode": "lora"}, "lora": {}}
    for widget, section, field, _ in _schema_fields():
        value = from_widget(section, field, values[widget])
        if field in ("prompts", "target_modules") and isinstance(value, str):
            value = split_list(value, lines=field == "prompts")
        if section is TrainerConfig:
            cfg[field] = value
        else:
            cfg.setdefault(_section_key(section), {})[field] = value
    cfg["validation"]["video_dims"] = [int(values[n]) for n in _DIM_NAMES]
    free_text = values.get("model_path", "")
    if values["model"] == FROM_DATASET and not (free_text or "").strip():
        model_source = dataset.model_source
    else:
        model_source = resolve_model(values["model"], free_text, "TrainLoRA.model")
    _check_latents_fit(model_source, dataset.model_source)
    cfg["model"]["model_source"] = model_source
    # The compact node has a trigger_word widget and writes the word into its validation prompts; the all-settings
    # node (no such widget) keeps its first-release behaviour (and job ids): the dataset's word, prompts as typed.
    trigger = resolve_trigger_word(dataset, values.get("trigger_word") or "")
    if trigger:
        cfg.setdefault("data", {})["trigger_word"] = trigger  # for the LoRA metadata and the model card
        if "trigger_word" in values:
            cfg["validation"]["prompts"] = [with_trigger_word(p, trigger) for p in cfg["validation"]["prompts"]]
    cfg["model"]["text_encoder_path"] = resolve_component("text_encoders", values["text_encoder"], "TrainLoRA.text_encoder")
    cfg["model"]["vae_path"] = resolve_component("vae", values["vae"], "TrainLoRA.vae")
    cfg["model"]["audio_vae_path"] = resolve_component("vae", values.get("audio_vae"), "TrainLoRA.audio_vae")
    cfg["data"] = {**cfg.get("data", {}), "preprocessed_data_root": str(dataset.precomputed_dir)}
    extra_text = (values.get("extra_config") or "").strip()
    if extra_text:
        import yaml

        try:
            extra = yaml.safe_load(extra_text)
        except yaml.YAMLError as exc:
            raise ConfigError(
                f"TrainLoRA.extra_config: not valid YAML ({str(exc).splitlines()[0]}); write sections as in a training "
                "config, e.g. 'optimization:\\n  scheduler_params: {power: 2}'"
            ) from None
        if not isinstance(extra, dict):
            raise ConfigError("TrainLoRA.extra_config: expected a YAML mapping of config sections (model:, lora:, ...)")
        cfg = _deep_merge(cfg, extra)
        if (cfg.get("model") or {}).get("training_mode", "lora") != "lora":
            raise ConfigError(
                "TrainLoRA.extra_config: model.training_mode must stay 'lora' in this node; run full fine-tunes with "
                "scripts/train.py"
            )
    return cfg


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    s = int(max(0, seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def step_text(ev: dict[str, Any]) -> str:
    loss = ev.get("loss")
    loss_text = f"{loss:.4f}" if isinstance(loss, (int, float)) else "?"
    return f"step {ev.get('step')}/{ev.get('total')}  loss {loss_text}  ETA {format_eta(ev.get('eta_s'))}"



def live_text(text: str, unique_id: str | None, node_key: str | None) -> None:
    """A live line of the run (step, loss, ETA...) for the node that queued it.

    From the editor (the prompt carries its workflow id, ``node_key`` is ``"<workflow id>:<node id>"``) the line
    reaches the node through ``ltx_trainer.event``, which the node's monitor widget (web/) shows only in the workflow
    whose id it names. ComfyUI's progress text is not used then: the frontend shows it on the node with the same id
    in whichever workflow is on the canvas (see :func:`comfy.progress_text`), i.e. in another open workflow as soon
    as the user switches tabs. Prompts without a workflow (API clients, which have no monitor widget) get it as
    ComfyUI progress text, sent to the client that queued them.
    """
    if unique_id is not None and node_key is not None and node_key != str(unique_id):
        log.debug("[node %s] %s", node_key, text)
        return
    comfy.progress_text(text, unique_id)


def monitor_node_key(extra_pnginfo: Any, unique_id: str | None) -> str | None:
    """``"<workflow id>:<node id>"`` when the prompt carries its workflow (queued from the editor), else the node id."""
    workflow = extra_pnginfo.get("workflow") if isinstance(extra_pnginfo, dict) else None
    workflow_id = workflow.get("id") if isinstance(workflow, dict) else None
    if unique_id is None:
        return None
    return f"{workflow_id}:{unique_id}" if isinstance(workflow_id, str) and workflow_id else str(unique_id)

def health_text(lora_file: Path) -> str:
    """The LoRA health line the trainer wrote into the file's header (its scan before the save)."""
    from safetensors import safe_open

    from ltx_train_lib.lora_health import LoraHealth

    try:
        with safe_open(str(lora_file), framework="pt") as fh:
            report = LoraHealth.from_metadata(fh.metadata())
    except Exception:  # noqa: BLE001 - an unreadable header only costs this line
        report = None
    return report.summary() if report is not None else "LoRA health: not recorded (trained by an older version)"


def memory_check(cfg: Any) -> str | None:
    """The memory plan of the run, before it is spawned (ltx_train_lib.memory): a line to show on the node; with
    memory_budget_gb set, a run no recipe fits raises the trainer's own refusal (naming what would fit) here."""
    import torch

    from ltx_train_lib.memory.budget import budget_bytes, resolve
    from ltx_train_lib.memory.command import token_factor
    from ltx_train_lib.memory.plan import config_buckets
    from ltx_train_lib.models.registry import family_for_source

    device = "cuda" if torch.cuda.is_available() else "cpu"
    family = family_for_source(cfg.model.model_source)
    try:
        shapes, _where = config_buckets(cfg, family)
        budget, source = budget_bytes(cfg, device)
        res = resolve(cfg, family, shapes, device=device, budget=budget, budget_source=source,
                      token_factor=token_factor(cfg, family))
    except Exception as exc:  # noqa: BLE001 - without a budget the plan is information, never a reason not to train
        if cfg.memory.budget_gb is not None:
            raise
        log.info("no memory plan for this run: %s", exc)
        return None
    return res.summary


class TrainingStopped(Exception):
    """The job was stopped from outside this node (the monitor's Cancel button or a signal)."""


# The settings most runs change: the compact node shows these, and every other setting comes from a Training Options
# node (its widgets are the rest of the all-settings node's, with the same defaults, in the same order).
COMPACT_WIDGETS = ("model", "steps", "learning_rate", "rank", "alpha", "validation_prompts", "validation_interval",
                   "memory_budget_gb")
TRIGGER_PLACEHOLDER = "[trigger]"
# Settings added after the first release that the all-settings node takes as optional inputs (API prompts written
# for it before lack them).
OPTIONAL_SETTINGS = ("audio_vae",)


def all_settings_widgets() -> dict[str, Any]:
    """Every setting widget of the all-settings TrainLoRA node, in its (saved-workflow) order, without ``dataset``."""
    widgets: dict[str, Any] = {
        "model": model_widget(
            "Base model to train. '(same as dataset)' uses the model that encoded the dataset (latents only fit "
            "the VAE that made them).",
            extra_first=[FROM_DATASET],
            default=NODE_DEFAULTS["model"],
        ),
        "model_path": model_path_widget(),
        "text_encoder": component_widget(
            "text_encoders", "Text encoder for validation videos (T5 for LTX-Video, Gemma for LTX-2): a file in "
            "models/text_encoders, or from the model."
        ),
        "vae": component_widget("vae", "VAE for validation videos: a file in models/vae, or from the model."),
    }
    trailing = {}
    for widget, section, field, opts in _schema_fields():
        if widget in NODE_DEFAULTS:
            opts = {**opts, "default": NODE_DEFAULTS[widget]}
        (trailing if widget in TRAILING else widgets)[widget] = schema_widget(section, field, **opts)
    widgets.update(_dims_widgets())
    widgets["num_processes"] = (
        "INT",
        {"default": 1, "min": 1, "max": 64, "tooltip": "Training processes (one per GPU; on CPU, gloo processes)."},
    )
    widgets["job_name"] = (
        "STRING",
        {"default": "", "tooltip": "Name shown in the LTX Trainer panel; empty = '<dataset> r<rank> <steps> steps'."},
    )
    widgets["extra_config"] = (
        "STRING",
        {
            "default": "",
            "multiline": True,
            "tooltip": "Optional YAML merged over the settings above, for any other config field, e.g. "
            "'optimization:\\n  scheduler_params: {power: 2}'.",
        },
    )
    widgets.update(trailing)
    # Last, so saved workflows keep their widget order (optional on the all-settings node: older API prompts lack it).
    widgets["audio_vae"] = component_widget(
        "vae", "LTX-2 only: the audio VAE file for validation sound (models/vae LTX2_audio_vae*), when the model and "
        "the 'vae' file do not hold it; '(from model)' otherwise."
    )
    return widgets


def option_widgets() -> dict[str, Any]:
    """The Training Options node's widgets: every setting the compact TrainLoRA does not show."""
    return {k: v for k, v in all_settings_widgets().items() if k not in COMPACT_WIDGETS}


def option_defaults() -> dict[str, Any]:
    """What a compact TrainLoRA without an options input trains with: a fresh Training Options node's values."""
    return widget_defaults(option_widgets())


def with_trigger_word(prompt: str, trigger: str) -> str:
    """A validation prompt that shows the LoRA: ``[trigger]`` becomes the trigger word, and a prompt without it gets
    it in front, as the captions it was trained on had it (PrecomputeLatents puts it first)."""
    if TRIGGER_PLACEHOLDER in prompt:
        return prompt.replace(TRIGGER_PLACEHOLDER, trigger)
    if re.search(rf"(?<!\w){re.escape(trigger)}(?!\w)", prompt, flags=re.IGNORECASE):
        return prompt
    return f"{trigger} {prompt}"


def resolve_trigger_word(dataset: T.PrecomputedSet, text: str) -> str | None:
    """The LoRA's trigger word: the one the dataset's captions were encoded with, or, for a dataset encoded without
    one (captions that already hold it), the word typed into TrainLoRA.trigger_word."""
    from ltx_train_lib.errors import ConfigError

    typed = (text or "").strip()
    if dataset.trigger_word and typed and typed != dataset.trigger_word:
        raise ConfigError(
            f"TrainLoRA.trigger_word: '{typed}' is not the trigger word '{dataset.trigger_word}' this dataset's "
            "captions were encoded with (PrecomputeLatents.trigger_word); leave it empty to use the dataset's, or "
            f"encode the captions again with PrecomputeLatents.trigger_word '{typed}'"
        )
    return dataset.trigger_word or typed or None


class _TrainNode:
    """What both TrainLoRA nodes do with their values: start (or resume, or reuse) the job and follow it."""

    CATEGORY = "LTX Trainer/training"
    RETURN_TYPES = (T.LORA, "LOSS_MAP")
    RETURN_NAMES = ("lora", "loss")
    OUTPUT_TOOLTIPS = (
        "The trained LoRA (diffusers and ComfyUI files, job folder, validation videos).",
        "Loss per step, for ComfyUI's Loss Graph node.",
    )
    FUNCTION = "train"
    OUTPUT_NODE = True
    HIDDEN = {"unique_id": "UNIQUE_ID", "extra_pnginfo": "EXTRA_PNGINFO"}

    async def _run(self, dataset: T.PrecomputedSet, values: dict[str, Any], unique_id: str | None, extra_pnginfo: Any):
        from ltx_train_lib import jobs
        from ltx_train_lib.config import config_from_dict

        cfg = config_from_dict(build_config(dataset, values), "TrainLoRA inputs")
        assert cfg.lora is not None
        # Node ids repeat across workflows: the monitor keys a job by "<workflow id>:<node id>" (see web/).
        node_key = monitor_node_key(extra_pnginfo, unique_id)
        name = values.get("job_name", "").strip() or f"{dataset.name} r{cfg.lora.rank} {cfg.optimization.steps} steps"
        num_processes = int(values.get("num_processes", 1))
        if jobs.finished_result(comfy.jobs_root() / jobs.job_id_for(cfg, num_processes, dataset.fingerprint)) is None:
            comfy.unload_models()  # the trainer is another process: it needs the memory ComfyUI holds
            plan_text = await asyncio.to_thread(memory_check, cfg)  # refuses a run its budget cannot hold
            if plan_text:
                live_text(plan_text, unique_id, node_key)
        job = await asyncio.to_thread(
            jobs.start_job,
            cfg,
            comfy.jobs_root(),
            name=name,
            num_processes=num_processes,
            identity=dataset.fingerprint,
            node_id=node_key,
        )
        comfy.send_event(JOBS_EVENT, {})
        if job.status == jobs.FINISHED:
            live_text(f"already trained: {job.dir}", unique_id, node_key)
            total = (job.result or {}).get("total") or cfg.optimization.steps
            comfy.Progress(total, unique_id).update(total)
        else:
            await self._follow(job, cfg.optimization.steps, unique_id, node_key)
        return self._output(job, cfg, dataset, unique_id)

    async def _follow(self, job: Any, total: int, unique_id: str | None, node_key: str | None = None) -> None:
        from ltx_train_lib import jobs

        bar = comfy.Progress(total, unique_id, "training")
        seen = 0
        try:
            while True:
                job.poll_events()
                status = job.poll()  # after the child ends this also drains its last events
                for ev in job.events[seen:]:
                    self._on_event(job, ev, bar, unique_id, node_key)
                seen = len(job.events)
                if status != jobs.RUNNING:
                    break
                if comfy.processing_interrupted():
                    live_text("cancelling: waiting for the trainer's checkpoint...", unique_id, node_key)
                    await asyncio.to_thread(job.cancel, CANCEL_TIMEOUT_S)
                    for ev in job.events[seen:]:
                        self._on_event(job, ev, bar, unique_id, node_key)
                    seen = len(job.events)
                    comfy.send_event(JOBS_EVENT, {})
                    comfy.throw_if_interrupted()
                    raise comfy.Interrupted("processing interrupted (Cancel)")  # flag already consumed elsewhere
                await asyncio.sleep(POLL_S)
        except BaseException:
            # Whatever ends this loop early (Cancel raised by the progress hook, an error of ours, the task being
            # cancelled), no training process may outlive it unwatched.
            if job.status == jobs.RUNNING:
                with contextlib.suppress(Exception):
                    job.cancel(CANCEL_TIMEOUT_S)
                comfy.send_event(JOBS_EVENT, {})
            raise
        comfy.send_event(JOBS_EVENT, {})
        if job.status == jobs.CANCELLED:
            ev = job.last("cancelled") or {}
            raise TrainingStopped(
                f"training job {job.id} was stopped from outside ComfyUI's Cancel (monitor panel or a signal) at step "
                f"{ev.get('step')}; its checkpoint is kept in {job.dir}: queue the prompt again to resume"
            )
        job.raise_for_status()

    def _on_event(
        self, job: Any, ev: dict[str, Any], bar: comfy.Progress, unique_id: str | None, node_key: str | None = None
    ) -> None:
        kind = ev.get("event")
        comfy.send_event(EVENT, {"job_id": job.id, "node_id": node_key or unique_id, "event": ev})
        if kind == "started":
            bar.update(ev.get("step") or 0, ev.get("total"))
            resumed = f", resumed at step {ev.get('step')}" if ev.get("resumed_from") else ""
            live_text(f"started: {ev.get('total')} steps on {ev.get('num_processes')} process(es){resumed}", unique_id, node_key)
        elif kind == "step":
            bar.update(ev.get("step") or 0, ev.get("total"))
            live_text(step_text(ev), unique_id, node_key)
        elif kind == "sample":
            live_text(f"validation videos at step {ev.get('step')}", unique_id, node_key)
        elif kind == "checkpoint":
            live_text(f"checkpoint at step {ev.get('step')}", unique_id, node_key)
        elif kind == "done":
            bar.update(ev.get("total") or ev.get("step") or 0, ev.get("total"))
            live_text(f"done: {ev.get('step')} steps", unique_id, node_key)

    def _output(self, job: Any, cfg: Any, dataset: T.PrecomputedSet, unique_id: str | None) -> dict[str, Any]:
        from ltx_train_lib.events import read_events

        history = read_events(job.events_path)
        outputs = job.outputs
        samples = next((e.get("paths") or [] for e in reversed(history) if e.get("event") == "sample"), [])
        losses: dict[int, float] = {}
        for ev in history:
            if ev.get("event") == "step" and isinstance(ev.get("loss"), (int, float)):
                losses[int(ev["step"])] = float(ev["loss"])
        comfy_file = outputs.get("lora_comfy")
        record = T.LoraResult(
            job_id=job.id,
            job_dir=job.dir,
            lora=Path(outputs["lora"]),
            lora_comfy=Path(comfy_file) if comfy_file else None,
            steps=int((job.result or {}).get("step") or cfg.optimization.steps),
            model_source=cfg.model.model_source,
            rank=cfg.lora.rank,
            alpha=cfg.lora.alpha,
            trigger_word=dataset.trigger_word,
            samples=tuple(Path(p) for p in samples if Path(p).is_file()),
            config_file=job.config_path,
            name=job.name,
        )
        final = (job.result or {}).get("final_loss")
        text = [
            f"{job.name}: {record.steps} steps" + (f", final loss {final:.4f}" if isinstance(final, (int, float)) else ""),
            f"LoRA: {record.lora}",
            health_text(record.lora),
            f"job folder: {job.dir}",
        ]
        ui = {**comfy.ui_videos([comfy.preview_entry(p) for p in record.samples]), **comfy.ui_text(text, unique_id)}
        ui["ltx_job"] = [job.id]  # the monitor widget binds this node to its job even across reloads
        loss_map = {"loss": [losses[s] for s in sorted(losses)]}
        return {"ui": ui, "result": (record, loss_map)}



class TrainLoRA(_TrainNode):
    """Train an LTX LoRA on a precomputed dataset, in its own process: the settings most runs change as widgets,
    the rest from an optional Training Options node."""

    SEARCH_ALIASES = ["train lora", "lora training", "ltx train", "ltxv lora", "ltx-2 lora", "fine-tune", "finetune",
                      "trainer"]
    DESCRIPTION = (
        "Trains a LoRA in a separate accelerate process (ComfyUI's models are unloaded first). Shows step, loss and "
        "ETA; Cancel stops training after a resumable checkpoint, and queueing again resumes. Every other setting "
        "(optimizer, precision, validation size, checkpoints, extra YAML...) comes from a Training Options node "
        "connected to 'options'. The job folder is output/ltx_trainer/jobs/<job id>/ (the same settings and data "
        "always give the same job)."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        widgets = all_settings_widgets()
        required: dict[str, Any] = {"dataset": (T.DATASET, {"tooltip": "Precomputed dataset (from Precompute Latents)."})}
        for name in COMPACT_WIDGETS:
            required[name] = widgets[name]
            if name == "alpha":
                required["trigger_word"] = ("STRING", {"default": "", "tooltip": (
                    "The LoRA's trigger word, written into its metadata and model card and into every validation "
                    f"prompt that lacks it ({TRIGGER_PLACEHOLDER} in a prompt marks where; otherwise it goes first). "
                    "Empty = the word the dataset was encoded with (PrecomputeLatents.trigger_word); type one only "
                    "for a dataset whose captions already hold it.")})
        required["validation_prompts"][1]["tooltip"] += f" {TRIGGER_PLACEHOLDER} stands for the trigger word."
        return {
            "required": required,
            "optional": {"options": (T.TRAIN_OPTIONS, {"tooltip": (
                "Every other training setting, from a Training Options node; unconnected = that node's defaults.")})},
            "hidden": dict(cls.HIDDEN),
        }

    async def train(self, dataset: T.PrecomputedSet, options: dict[str, Any] | None = None, unique_id: str | None = None,
                    extra_pnginfo: Any = None, **values: Any):
        # An options record from an older version may lack newer settings: those take their defaults.
        return await self._run(dataset, {**option_defaults(), **(options or {}), **values}, unique_id, extra_pnginfo)


class TrainingOptions(OptionsNode):
    """Every training setting the compact TrainLoRA node does not show, as one record for its 'options' input."""

    CATEGORY = "LTX Trainer/training"
    SEARCH_ALIASES = ["training options", "lora options", "optimizer", "advanced training", "ltx options"]
    DESCRIPTION = (
        "The rest of a training run's settings (optimizer, scheduler, precision, quantization, LoRA targets and "
        "modalities, validation size and steps, checkpoints, processes, extra YAML) for Train LoRA's 'options' input. "
        "Defaults, ranges and help come from the training config's schema."
    )
    RETURN_TYPES = (T.TRAIN_OPTIONS,)
    OUTPUT_TOOLTIPS = ("Settings for Train LoRA's 'options' input.",)
    widgets = staticmethod(option_widgets)


class TrainLoRAAllSettings(_TrainNode):
    """The first release's TrainLoRA, every setting a widget: kept so saved workflows load and run unchanged (their
    widget values are positional); new graphs use the compact node with Training Options."""

    DEPRECATED = True  # hidden from the node search; saved workflows still load it
    SEARCH_ALIASES: list[str] = []
    DESCRIPTION = (
        "Train LoRA with every setting as a widget (the first release's node, kept for saved workflows). New graphs: "
        "use Train LoRA with a Training Options node; the same settings give the same job."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        widgets = all_settings_widgets()
        optional = {name: widgets.pop(name) for name in OPTIONAL_SETTINGS}
        required = {"dataset": (T.DATASET, {"tooltip": "Precomputed dataset (from Precompute Latents)."}), **widgets}
        return {"required": required, "optional": optional, "hidden": dict(cls.HIDDEN)}

    async def train(self, dataset: T.PrecomputedSet, unique_id: str | None = None, extra_pnginfo: Any = None,
                    **values: Any):
        return await self._run(dataset, values, unique_id, extra_pnginfo)
