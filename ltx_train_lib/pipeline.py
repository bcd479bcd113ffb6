"""The whole pipeline: ``BASENAME_raw/`` → scenes → captions → preprocessing → training → ComfyUI LoRA.

Every stage is incremental, so a re-run after a crash or an edit continues where it can: scene splitting and
captioning skip what is done, preprocessing recomputes only changed samples, training resumes from its newest
checkpoint, and a finished training (same settings, all steps done) is skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ltx_train_lib.config import MAX_STEPS, TrainerConfig, config_from_dict
from ltx_train_lib.errors import ConfigError, DatasetError
from ltx_train_lib.precompute.config import PrecomputeConfig, cli_names, config_defaults

log = logging.getLogger("ltx_train_lib.pipeline")
StageFn = Callable[[str, str], None]  # (stage, message)
# The preprocessing keywords of run_pipeline default to the schema's defaults (PrecomputeConfig).
_PRE = config_defaults()


@dataclass
class PipelineResult:
    stages: dict[str, str] = field(default_factory=dict)  # stage -> "ran" | "skipped (current)" | details
    outputs: dict[str, str] = field(default_factory=dict)
    skipped_media: list[tuple[str, str]] = field(default_factory=list)


def render_template(template: str | Path, basename: str, rank: int) -> str:
    path = Path(template)
    if not path.is_file():
        raise ConfigError(f"--config-template: '{template}' does not exist; use one of configs/*_template.yaml")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"--config-template: '{template}' is not a text file; use one of configs/*_template.yaml") from None
    return text.replace("[BASENAME]", basename).replace("[RANK]", str(rank))


def build_training_config(
    template: str | Path,
    basename: str,
    rank: int,
    work_dir: Path,
    prompts: list[str],
    model: str | None = None,
    steps: int | None = None,
) -> TrainerConfig:
    try:
        data: Any = yaml.safe_load(render_template(template, basename, rank))
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"--config-template: '{template}' is not valid YAML ({str(exc).splitlines()[0]}); fix the syntax or use one "
            "of configs/*_template.yaml"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"--config-template: '{template}' is not a YAML mapping of config sections (model:, lora:, optimization:, "
            "...); use one of configs/*_template.yaml"
        )
    for section in ("model", "optimization", "data", "validation"):  # the sections filled in below
        if data.get(section) is None:
            data.pop(section, None)
        elif not isinstance(data[section], dict):
            raise ConfigError(
                f"--config-template: '{template}': '{section}' must be a section of settings (a YAML mapping), got "
                f"{data[section]!r}"
            )
    if model:
        data.setdefault("model", {})["model_source"] = model
    if steps is not None:
        data.setdefault("optimization", {})["steps"] = steps
    # Relative paths in templates are relative to where the pipeline runs (the folder holding BASENAME_raw/).
    data.setdefault("data", {})
    root = Path(str(data["data"].get("preprocessed_data_root", f"{basename}_scenes")))
    data["data"]["preprocessed_data_root"] = str(root if root.is_absolute() else work_dir / root)
    out = Path(str(data.get("output_dir", f"outputs/{basename}_lora_r{rank}")))
    data["output_dir"] = str(out if out.is_absolute() else work_dir / out)
    validation = data.setdefault("validation", {})
    if not validation.get("prompts"):
        validation["prompts"] = prompts
    return config_from_dict(data, f"--config-template '{template}'")


def training_is_current(cfg: TrainerConfig) -> bool:
    """True when output_dir holds a finished run of exactly these settings and all its final weights."""
    from ltx_train_lib.training.checkpoint import latest_state_checkpoint
    from ltx_train_lib.training.trainer import config_fingerprint

    out = Path(cfg.output_dir)
    latest = latest_state_checkpoint(out)
    if latest is None or latest.step < cfg.optimization.steps:
        return False
    if latest.meta.get("fingerprint") != config_fingerprint(cfg):
        return False
    names = ["lora_weights.safetensors", "lora_weights_comfy.safetensors"] if cfg.model.training_mode == "lora" else ["model_weights.safetensors"]
    return all((out / n).is_file() for n in names)


def run_pipeline(
    basename: str,
    resolution_buckets: str,
    config_template: str | Path,
    rank: int,
    *,
    work_dir: str | Path = ".",
    id_token: str | None = None,
    model: str | None = None,
    captioner_model: str | None = None,
    steps: int | None = None,
    batch_size: int = _PRE["batch_size"],
    device: str | None = _PRE["device"],
    load_text_encoder_in_8bit: bool = _PRE["load_text_encoder_in_8bit"],
    vae_tiling: bool = _PRE["vae_tiling"],
    remove_llm_prefixes: bool = _PRE["remove_llm_prefixes"],
    num_validation_prompts: int = 3,
    on_stage: StageFn | None = None,
    train_listeners: list | None = None,
) -> PipelineResult:
    def stage(name: str, message: str) -> None:
        log.info("[%s] %s", name, message)
        if on_stage:
            on_stage(name, message)

    # Every argument is checked before any stage runs: a typo must not cost a scene split and a captioning run.
    if not basename.strip() or any(sep in basename for sep in ("/", "\\")) or basename in (".", ".."):
        raise ConfigError(
            f"BASENAME '{basename}': give the dataset's name, not a path (videos are read from <work dir>/BASENAME_raw/; "
            "pass the folder with --work-dir)"
        )
    if not 1 <= rank <= 256:
        raise ConfigError(f"--rank {rank}: must be between 1 and 256 (typical: 16-128)")
    if steps is not None and not 1 <= steps <= MAX_STEPS:
        raise ConfigError(f"--steps {steps}: must be between 1 and {MAX_STEPS:,} (typical: 500-3000)")
    if model is not None:
        from ltx_train_lib.models.registry import check_model_source

        try:
            check_model_source(model)
        except (ValueError, ConfigError) as exc:
            raise ConfigError(f"--model: {exc}") from None
    if captioner_model is not None:  # the cheap part of captioning.resolve_captioner_model (which builds 'tiny')
        if not str(captioner_model).strip():
            raise ConfigError("--captioner: empty; give a Hugging Face id (Qwen/Qwen2.5-VL-7B-Instruct), a model folder or 'tiny'")
        captioner_path = Path(str(captioner_model).strip()).expanduser()
        if captioner_path.exists() and not (captioner_path / "config.json").is_file():
            raise ConfigError(f"--captioner: '{captioner_path}' is not a Qwen2.5-VL model folder (no config.json); give a "
                              "model folder, a Hugging Face id or 'tiny'")
    if num_validation_prompts < 0:
        raise ConfigError(f"num_validation_prompts {num_validation_prompts}: must be 0 or more")
    work = Path(work_dir).expanduser().resolve()
    raw = work / f"{basename}_raw"
    scenes_dir = work / f"{basename}_scenes"
    captions_file = scenes_dir / "captions.json"
    # Every preprocessing option is checked before any work; the model is the training config's (known later).
    pre_config = PrecomputeConfig.from_options(
        {
            "dataset_file": str(captions_file),
            "resolution_buckets": resolution_buckets,
            "id_token": id_token,
            "remove_llm_prefixes": remove_llm_prefixes,
            "decode_videos": True,  # the pipeline always leaves the decoded clips to look at
            "vae_tiling": vae_tiling,
            "batch_size": batch_size,
            "device": device,
            "load_text_encoder_in_8bit": load_text_encoder_in_8bit,
        },
        names=cli_names(),
    )
    # The whole training config, with stand-ins for the validation prompts (they come from the captions, later).
    build_training_config(config_template, basename, rank, work, [f"{id_token or ''} caption".strip()] * num_validation_prompts,
                          model=model, steps=steps)
    if not raw.is_dir():
        raise DatasetError(f"'{raw}' does not exist; put the raw videos in a folder named {basename}_raw/ next to where you run the pipeline")
    # The stages' modules only now: the checks above stay quick.
    from ltx_train_lib.captioning import DEFAULT_MODEL, caption_media
    from ltx_train_lib.captions_io import prepend_trigger, read_captions
    from ltx_train_lib.precompute import preprocess_dataset
    from ltx_train_lib.scenes import split_folder

    result = PipelineResult()

    stage("scenes", f"splitting {raw} into {scenes_dir}")
    summary = split_folder(raw, scenes_dir)
    if not summary.clips and not any(scenes_dir.glob("*.mp4")):
        raise DatasetError(f"no scene clips were produced from '{raw}'; add readable videos (mp4, mov, mkv, webm, avi)")
    result.skipped_media += [(str(v.source), v.reason) for v in summary.skipped]
    result.stages["scenes"] = f"{len(summary.split)} split, {len(summary.unchanged)} already split, {len(summary.skipped)} skipped"

    stage("captions", f"captioning clips into {captions_file}")
    # The schema's device ('auto' already turned into None = CUDA if present), so both stages read it alike.
    report = caption_media(scenes_dir, captions_file, model=captioner_model or DEFAULT_MODEL, device=pre_config.device)
    result.skipped_media += [(str(p.path), p.reason) for p in report.failed]
    result.stages["captions"] = f"{len(report.captioned)} captioned, {len(report.already_captioned)} already captioned"

    entries = read_captions(captions_file)
    if not entries:
        raise DatasetError(f"'{captions_file}' has no captions; check the clips in {scenes_dir}")
    # The prompts the LoRA was trained on: the trigger word once, even where a caption already starts with it.
    prompts = [prepend_trigger(e.caption, pre_config.id_token) for e in entries[:num_validation_prompts]]
    cfg = build_training_config(config_template, basename, rank, work, prompts, model=model, steps=steps)

    stage("preprocess", f"encoding latents and text into {scenes_dir / '.precomputed'}")
    pre = preprocess_dataset(pre_config.model_copy(update={"model_source": cfg.model.model_source}))
    result.skipped_media += list(pre.skipped)
    result.stages["preprocess"] = f"{len(pre.processed)} computed, {len(pre.reused)} reused, {len(pre.skipped)} skipped"

    out = Path(cfg.output_dir)
    if training_is_current(cfg):
        stage("train", f"skipped: {out} already holds a finished run with these settings")
        result.stages["train"] = "skipped (current)"
    else:
        from ltx_train_lib.config import dump_config
        from ltx_train_lib.fileio import write_text_atomic
        from ltx_train_lib.training.trainer import Trainer

        out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out / "config.yaml", dump_config(cfg))
        stage("train", f"training into {out} (config: {out / 'config.yaml'})")
        res = Trainer(cfg, listeners=train_listeners).train()
        result.stages["train"] = f"{res.status} at step {res.step}"

    comfy = out / "lora_weights_comfy.safetensors"
    if cfg.model.training_mode == "lora":
        if not comfy.is_file():
            from ltx_train_lib.export import convert_file

            convert_file(out / "lora_weights.safetensors", to="comfy", output_path=comfy)
            result.stages["convert"] = "ran"
        else:
            result.stages["convert"] = "skipped (current)"
        result.outputs.update(lora=str(out / "lora_weights.safetensors"), lora_comfy=str(comfy))
    else:
        result.outputs["model"] = str(out / "model_weights.safetensors")
    result.outputs.update(
        scenes=str(scenes_dir), captions=str(captions_file), precomputed=str(scenes_dir / ".precomputed"),
        decoded_videos=str(scenes_dir / ".precomputed" / "decoded_videos"), training_config=str(out / "training_config.yaml"),
        validation_samples=str(out / "validation_samples"), output_dir=str(out),
    )
    return result
