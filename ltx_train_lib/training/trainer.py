"""The training loop: LoRA (peft) or full fine-tuning of the LTX-Video transformer, resumable at any moment.

Runs under Hugging Face Accelerate (one process, DDP over several, or FSDP for full fine-tunes). Only rank 0 writes
files and events. SIGTERM/SIGINT (and the death of a watched parent process) stop the run after the current
optimizer step with a resumable checkpoint and a ``cancelled`` event.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import signal
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ltx_train_lib.config import TrainerConfig, dump_config
from ltx_train_lib.data import BucketBatchPlan, PrecomputedDataset, collate
from ltx_train_lib.errors import ConfigError, TrainingError
from ltx_train_lib.events import EVENTS_FILE, EventWriter
from ltx_train_lib.fileio import write_text_atomic
from ltx_train_lib.training import checkpoint as ckpt
from ltx_train_lib.training.listeners import build_listeners, close_listeners
from ltx_train_lib.training.schedule import lr_factor
from ltx_train_lib.training.strategy import check_reference_latents, flow_matching_loss, reference_video_loss
from ltx_train_lib.training.validation import check_validation_inputs, generate_validation_videos

log = logging.getLogger("ltx_train_lib.trainer")
PARENT_PID_ENV = "LTX_TRAIN_PARENT_PID"


@dataclass
class TrainResult:
    status: str  # "done" | "cancelled"
    step: int
    outputs: dict[str, str] = field(default_factory=dict)
    losses: list[float] = field(default_factory=list)


def config_fingerprint(cfg: TrainerConfig) -> str:
    """What must not change between a checkpoint and its resume (the math of training, not logging or steps)."""
    data = cfg.model_dump(mode="json")
    for key in ("validation", "checkpoints", "hub", "wandb", "tensorboard", "output_dir"):
        data.pop(key, None)
    data["optimization"].pop("steps", None)
    data["data"].pop("num_dataloader_workers", None)
    return hashlib.sha256(repr(sorted(_flatten(data).items())).encode()).hexdigest()[:16]


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


class _StopFlag:
    """Set by SIGTERM/SIGINT; checked at optimizer-step boundaries."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (e.g. called from a ComfyUI worker): no handlers
                pass

    def uninstall(self) -> None:
        for sig, prev in self._previous.items():
            signal.signal(sig, prev)
        self._previous.clear()

    def _handle(self, signum, frame) -> None:  # noqa: ARG002
        self.reason = signal.Signals(signum).name

    def check_parent(self) -> None:
        pid = os.environ.get(PARENT_PID_ENV)
        if pid and self.reason is None:
            try:
                os.kill(int(pid), 0)
            except ProcessLookupError:
                self.reason = "parent process exited"
            except (PermissionError, ValueError):
                pass


class Trainer:
    def __init__(self, cfg: TrainerConfig, *, events: EventWriter | None = None, listeners: list | None = None) -> None:
        self.cfg = cfg
        self.output_dir = Path(cfg.output_dir).expanduser().resolve()
        self.listeners = listeners or []  # the caller's (e.g. the CLI printer), kept across train() calls
        self._run_listeners: list = []  # TensorBoard / W&B, started per run by build_listeners
        self._events = events
        self.stop = _StopFlag()

    # ------------------------------------------------------------------ setup
    def _emit(self, event: str, **fields: Any) -> None:
        if not self.is_main:
            return
        record = self.events.emit(event, **fields)
        for fn in (*self.listeners, *self._run_listeners):
            fn(record)

    def _check_inputs(self) -> PrecomputedDataset:
        """Everything that can be checked before a model is loaded or a file written."""
        cfg = self.cfg
        if cfg.model.load_checkpoint:
            ckpt.find_weights_file(cfg.model.load_checkpoint)
        if cfg.optimization.optimizer_type == "adamw8bit" and not torch.cuda.is_available():
            raise ConfigError("optimization.optimizer_type 'adamw8bit' needs a CUDA GPU (bitsandbytes); use 'adamw' on this machine")
        if cfg.acceleration.quantization not in (None, "no_change"):
            try:
                import optimum.quanto  # noqa: F401
            except ImportError:
                raise ConfigError(
                    f"acceleration.quantization '{cfg.acceleration.quantization}' needs optimum-quanto; pip install optimum-quanto"
                ) from None
        if cfg.wandb.enabled:
            try:
                import wandb  # noqa: F401
            except ImportError:
                raise ConfigError("wandb.enabled is true but the wandb package is not installed; pip install wandb, or set wandb.enabled: false") from None
        if self.validation_enabled:
            check_validation_inputs(cfg.validation, reference_mode=self.reference_mode)
        if self.reference_mode:  # IC-LoRA: every sample needs its reference latents, checked before any model loads
            dataset = PrecomputedDataset(cfg.data.preprocessed_data_root, reference_latents_dir=cfg.conditioning.reference_latents_dir)
            check_reference_latents(dataset, cfg.conditioning.reference_latents_dir)
            return dataset
        return PrecomputedDataset(cfg.data.preprocessed_data_root)

    @property
    def reference_mode(self) -> bool:
        return self.cfg.conditioning.mode == "reference_video"

    @property
    def validation_enabled(self) -> bool:
        return bool(self.cfg.validation.prompts) and self.cfg.validation.interval is not None

    def _mixed_precision(self) -> str:
        mode = self.cfg.acceleration.mixed_precision_mode or "no"
        if mode == "fp16" and not torch.cuda.is_available():
            log.warning("fp16 autocast needs a GPU; training in fp32 on this CPU")
            return "no"
        return mode

    def _build_model(self, components) -> tuple[torch.nn.Module, list[torch.nn.Parameter]]:
        cfg = self.cfg
        transformer = components.transformer
        transformer.requires_grad_(False)
        if cfg.acceleration.quantization not in (None, "no_change"):
            self._quantize(transformer, cfg.acceleration.quantization)
        if cfg.model.training_mode == "lora":
            from peft import LoraConfig

            assert cfg.lora is not None
            transformer.add_adapter(
                LoraConfig(
                    r=cfg.lora.rank,
                    lora_alpha=cfg.lora.alpha,
                    lora_dropout=cfg.lora.dropout,
                    target_modules=list(cfg.lora.target_modules),
                    init_lora_weights=True,
                )
            )
            params = [p for n, p in transformer.named_parameters() if "lora_" in n]
            for p in params:
                p.requires_grad_(True)
                p.data = p.data.float()  # adapter weights train in fp32 even over a bf16 base
            if not params:
                raise ConfigError(f"lora.target_modules {cfg.lora.target_modules} matched no module of the transformer")
        else:
            transformer.requires_grad_(True)
            params = list(transformer.parameters())
        if cfg.model.load_checkpoint:
            self._load_weights_only(transformer, ckpt.find_weights_file(cfg.model.load_checkpoint))
        if cfg.optimization.enable_gradient_checkpointing:
            # On the unwrapped model, before DDP wraps it (the reference crashed calling it on the DDP wrapper).
            transformer.enable_gradient_checkpointing()
        if cfg.acceleration.compile_with_inductor:
            if self.device.type == "cuda":
                torch._dynamo.config.cache_size_limit = 128
                for i, block in enumerate(transformer.transformer_blocks):
                    transformer.transformer_blocks[i] = torch.compile(block, mode=cfg.acceleration.compilation_mode)
            else:
                log.info("acceleration.compile_with_inductor: skipped on CPU")
        transformer.train()
        return transformer, params

    @staticmethod
    def _quantize(transformer, mode: str) -> None:
        """Quantize the frozen base weights with optimum-quanto (as the reference), keeping sensitive layers."""
        from optimum import quanto

        qtypes = {"int8-quanto": "qint8", "int4-quanto": "qint4", "int2-quanto": "qint2", "fp8-quanto": "qfloat8",
                  "fp8uz-quanto": "qfloat8_e4m3fnuz"}
        weights = getattr(quanto, qtypes[mode])
        quanto.quantize(transformer, weights=weights,
                        exclude=["proj_in", "time_embed.*", "caption_projection.*", "rope", "*norm*", "proj_out"])
        quanto.freeze(transformer)

    def _load_weights_only(self, transformer, path: Path) -> None:
        from safetensors.torch import load_file

        from ltx_train_lib import export

        sd = load_file(str(path))
        layout = export.detect_layout(sd)
        if self.cfg.model.training_mode == "lora":
            from peft import set_peft_model_state_dict

            if layout == "comfy_lora":
                sd = export.comfy_lora_to_diffusers(sd)
            elif layout not in ("diffusers_lora", "peft_lora"):
                raise TrainingError(f"model.load_checkpoint: '{path}' is not a LoRA file (layout: {layout}); give a LoRA .safetensors")
            sd = {k.removeprefix("transformer."): v for k, v in sd.items()}
            result = set_peft_model_state_dict(transformer, sd)
            if result.unexpected_keys:
                raise TrainingError(
                    f"model.load_checkpoint: '{path}' has {len(result.unexpected_keys)} keys this LoRA does not have "
                    f"(e.g. {result.unexpected_keys[0]}); check lora.rank and lora.target_modules match the file"
                )
        else:
            if layout == "comfy_full":
                sd = export.full_comfy_to_diffusers(sd)
            sd = {k.removeprefix("transformer.").replace("_orig_mod.", ""): v for k, v in sd.items()}
            missing, unexpected = transformer.load_state_dict(sd, strict=False)
            if unexpected or missing:
                raise TrainingError(f"model.load_checkpoint: '{path}' does not match the transformer ({len(missing)} missing, {len(unexpected)} unexpected keys)")

    # ------------------------------------------------------------------ state
    def _trainable_state(self) -> dict[str, torch.Tensor]:
        model = self.unwrapped
        return {n: p.detach().float().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}

    def _rng_state(self) -> dict[str, Any]:
        state = {
            "generator": self.generator.get_state(),
            "torch": torch.get_rng_state(),
            "python": random.getstate(),
            "numpy": np.random.get_state(),
        }
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def _set_rng_state(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch"])
        random.setstate(state["python"])
        np.random.set_state(state["numpy"])
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])

    def _save_checkpoint(self, step: int) -> Path | None:
        from accelerate.utils import gather_object

        rng_states = gather_object([self._rng_state()]) if self.world_size > 1 else [self._rng_state()]
        trainable = self._trainable_state()
        if not self.is_main:
            self.accelerator.wait_for_everyone()
            return None
        state = {
            "step": step,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "plan": self.plan.state_dict(),
            "rng": rng_states,
            "scaler": self.accelerator.scaler.state_dict() if getattr(self.accelerator, "scaler", None) else None,
            "losses": self.losses,
        }
        meta = {"fingerprint": self.fingerprint, "world_size": self.world_size, "training_mode": self.cfg.model.training_mode}
        path = ckpt.save_state_checkpoint(self.output_dir, step, trainable, state, meta)
        self._save_weights(ckpt.checkpoints_dir(self.output_dir), suffix=f"_step_{step:05d}", step=step)
        ckpt.prune_checkpoints(self.output_dir, self.cfg.checkpoints.keep_last_n)
        self._emit("checkpoint", step=step, path=str(path))
        self.accelerator.wait_for_everyone()
        return path

    def _resume(self) -> str | None:
        latest = ckpt.latest_state_checkpoint(self.output_dir) if self.cfg.checkpoints.resume else None
        if latest is None:
            return None
        meta = latest.meta
        if meta.get("fingerprint") != self.fingerprint:
            raise TrainingError(
                f"'{latest.path}' was made with different training settings than this config; to start over use a new "
                "output_dir or set checkpoints.resume: false (existing checkpoints are kept)"
            )
        if int(meta.get("world_size", 1)) != self.world_size:
            raise TrainingError(
                f"'{latest.path}' was made with {meta.get('world_size')} process(es) but this run has {self.world_size}; "
                "resume with the same --num_processes (the data order and noise streams are per process)"
            )
        trainable, state = ckpt.load_state_checkpoint(latest)
        named = dict(self.unwrapped.named_parameters())
        with torch.no_grad():
            for name, value in trainable.items():
                if name not in named:
                    raise TrainingError(f"checkpoint '{latest.path}' has a weight '{name}' the model does not have")
                named[name].copy_(value.to(named[name].dtype))
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.plan.load_state_dict(state["plan"])
        if state.get("scaler") and getattr(self.accelerator, "scaler", None):
            self.accelerator.scaler.load_state_dict(state["scaler"])
        self._set_rng_state(state["rng"][self.rank])
        self.step = int(state["step"])
        self.losses = list(state.get("losses", []))
        return str(latest.path)

    # ------------------------------------------------------------------ outputs
    def _metadata(self, step: int) -> dict[str, str]:
        cfg = self.cfg
        meta = {
            "base_model": self.model_label,
            "training_mode": cfg.model.training_mode,
            "training_steps": str(step),
            "learning_rate": str(cfg.optimization.learning_rate),
            "trainer": "ltx_train_lib",
        }
        if cfg.lora:
            meta.update(rank=str(cfg.lora.rank), alpha=str(cfg.lora.alpha), target_modules=",".join(cfg.lora.target_modules))
        trigger = os.environ.get("LTX_TRAIN_TRIGGER_WORD")
        if trigger:
            meta["trigger_word"] = trigger
        return meta

    def _save_weights(self, folder: Path, suffix: str = "", step: int = 0) -> dict[str, str]:
        from ltx_train_lib import export

        model = self.unwrapped
        meta = self._metadata(step)
        if self.cfg.model.training_mode == "lora":
            from peft import get_peft_model_state_dict

            assert self.cfg.lora is not None
            sd = {k: v.detach().float().cpu().contiguous() for k, v in get_peft_model_state_dict(model).items()}
            d, c = export.save_lora_pair(
                sd,
                folder,
                rank=self.cfg.lora.rank,
                alpha=self.cfg.lora.alpha,
                metadata=meta,
                diffusers_name=f"lora_weights{suffix}.safetensors",
                comfy_name=f"lora_weights{suffix}_comfy.safetensors",
            )
            return {"lora": str(d), "lora_comfy": str(c)}
        sd = {k.replace("_orig_mod.", ""): v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        path = folder / f"model_weights{suffix}.safetensors"
        # The architecture travels with the weights, so the file loads as a single-file model_source of any size.
        meta["transformer_config"] = json.dumps({k: v for k, v in dict(model.config).items() if not k.startswith("_")})
        export.save_full_model(sd, path, meta)
        return {"model": str(path)}

    def _validate(self, step: int) -> None:
        if not self.validation_enabled:
            return
        if self.is_main:
            model = self.unwrapped
            model.eval()
            # Validation must not disturb the training random streams (exact resume depends on them).
            with torch.random.fork_rng(devices=[]):
                paths = generate_validation_videos(self.components, model, self.cfg.validation, step, self.output_dir, self.device,
                                                   reference_mode=self.reference_mode)
            model.train()
            self._emit("sample", step=step, paths=[str(p) for p in paths], prompts=list(self.cfg.validation.prompts))
        self.accelerator.wait_for_everyone()

    # ------------------------------------------------------------------ main
    def train(self) -> TrainResult:
        self.stop.install()  # from the start: a Cancel during model loading must not be lost
        self._t_run = time.perf_counter()  # done.seconds: this run's wall time, model loading included
        try:
            return self._setup_and_train()
        finally:
            self.stop.uninstall()
            close_listeners(self._run_listeners)  # they close on the last event; this covers an exit without one
            self._run_listeners = []

    def _setup_and_train(self) -> TrainResult:
        from accelerate import Accelerator

        cfg = self.cfg
        # Bad input is reported before anything is written (not even an events file).
        dataset = self._check_inputs()
        if int(os.environ.get("WORLD_SIZE", "1")) == 1:
            # In-process reuse (tests, notebooks): start from a clean accelerate state each run.
            from accelerate.state import AcceleratorState

            AcceleratorState._reset_state(reset_partial_state=True)
        # cpu=True on machines without a GPU: with several processes accelerate then uses gloo (MULTI_CPU).
        self.accelerator = Accelerator(mixed_precision=self._mixed_precision(), cpu=not torch.cuda.is_available())
        acc = self.accelerator
        self.device = acc.device
        self.rank, self.world_size, self.is_main = acc.process_index, acc.num_processes, acc.is_main_process
        self.plan = BucketBatchPlan(dataset, cfg.optimization.batch_size, cfg.seed, self.rank, self.world_size)
        if self._events is None:
            # complete=True: a missing field is a trainer bug, caught by the tests that run it
            self._events = EventWriter(self.output_dir / EVENTS_FILE, echo_stdout=os.environ.get("LTX_TRAIN_EVENTS_STDOUT") == "1",
                                       complete=True)
        self.events = self._events
        self.fingerprint = config_fingerprint(cfg)
        try:
            return self._train(dataset)
        except Exception as exc:
            self._emit("error", message=str(exc) or type(exc).__name__, step=getattr(self, "step", 0))
            raise

    def _train(self, dataset: PrecomputedDataset) -> TrainResult:
        from ltx_train_lib.models.loader import load_components

        cfg, acc = self.cfg, self.accelerator
        torch.manual_seed(cfg.seed)  # identical adapter initialisation on every rank
        random.seed(cfg.seed)
        np.random.seed(cfg.seed)
        self.generator = torch.Generator().manual_seed(cfg.seed * 1000 + self.rank)  # per-rank noise stream

        base_dtype = torch.bfloat16 if (cfg.model.training_mode == "lora" and self._mixed_precision() == "bf16") else torch.float32
        wanted = ("transformer", "vae", "text_encoder", "tokenizer", "scheduler") if self.validation_enabled else ("transformer",)
        self.components = load_components(
            cfg.model.model_source,
            wanted,
            transformer_dtype=base_dtype,
            text_encoder_path=cfg.model.text_encoder_path,
            tokenizer_path=cfg.model.tokenizer_path,
            vae_path=cfg.model.vae_path,
        )
        self.model_label = self.components.label
        self.model_dtype = base_dtype
        transformer, params = self._build_model(self.components)

        opt = cfg.optimization
        if opt.optimizer_type == "adamw8bit":
            import bitsandbytes as bnb

            optimizer = bnb.optim.AdamW8bit(params, lr=opt.learning_rate, weight_decay=opt.weight_decay)
        else:
            optimizer = torch.optim.AdamW(params, lr=opt.learning_rate, weight_decay=opt.weight_decay)
        lr_factor(opt.scheduler_type, opt.scheduler_params, 0, opt.steps, opt.learning_rate)  # validate params early
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer,
            lambda s: lr_factor(opt.scheduler_type, opt.scheduler_params, s, opt.steps, opt.learning_rate, opt.warmup_steps),
        )
        self.model, self.optimizer = acc.prepare(transformer, optimizer)
        self.unwrapped = acc.unwrap_model(self.model)
        self.step = 0
        self.losses: list[float] = []
        resumed_from = self._resume()

        if self.is_main:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            write_text_atomic(self.output_dir / "training_config.yaml", dump_config(cfg))
            # TensorBoard / W&B listen to the event stream (_emit feeds them); the id keeps a resumed W&B run's chart
            self._run_listeners = build_listeners(cfg, self.output_dir, run_id=f"{self.output_dir.name}-{self.fingerprint}")
        total = opt.steps
        self._emit(
            "started",
            step=self.step,
            total=total,
            resumed_from=resumed_from,
            output_dir=str(self.output_dir),
            num_processes=self.world_size,
            model=self.model_label,
            training_mode=cfg.model.training_mode,
            effective_batch_size=opt.batch_size * self.world_size * opt.gradient_accumulation_steps,
            pid=os.getpid(),
        )
        if self.step >= total:
            return self._finish(dataset, resumed_only=True)
        if self._should_stop():  # cancelled while loading: nothing new to save
            latest = ckpt.latest_state_checkpoint(self.output_dir)
            self._emit("cancelled", step=self.step, checkpoint=str(latest.path) if latest else None, reason=self.stop.reason)
            return TrainResult("cancelled", self.step, losses=self.losses)
        if resumed_from is None and not cfg.validation.skip_initial_validation:
            self._validate(0)

        batches = self._batches(dataset)
        t_start = time.perf_counter()
        steps_this_run = 0
        while self.step < total:
            t0 = time.perf_counter()
            loss_sum = 0.0
            accum = opt.gradient_accumulation_steps
            for micro in range(accum):
                batch = next(batches)
                sync = micro == accum - 1
                with (nullcontext() if sync else acc.no_sync(self.model)), acc.autocast():
                    loss_fn = reference_video_loss if self.reference_mode else flow_matching_loss
                    out = loss_fn(
                        self.model,
                        batch,
                        self.generator,
                        sampling_mode=cfg.flow_matching.timestep_sampling_mode,
                        sampling_params=cfg.flow_matching.timestep_sampling_params,
                        first_frame_p=cfg.conditioning.first_frame_conditioning_p,
                        device=self.device,
                        model_dtype=self.model_dtype,
                    )
                    acc.backward(out.loss / accum)
                loss_sum += out.loss.detach().float().item()
            loss_value = loss_sum / accum
            if self.world_size > 1:
                loss_value = acc.reduce(torch.tensor(loss_value, device=self.device), reduction="mean").item()
            if not np.isfinite(loss_value):
                self.optimizer.zero_grad(set_to_none=True)
                last = ckpt.latest_state_checkpoint(self.output_dir)
                raise TrainingError(
                    f"the loss became {loss_value} at step {self.step + 1}; training stopped without saving these weights. "
                    + (f"The last good checkpoint is kept at '{last.path}'. " if last else "")
                    + "Lower optimization.learning_rate, enable gradient clipping (max_grad_norm) or check the dataset"
                )
            if opt.max_grad_norm > 0:
                acc.clip_grad_norm_(params, opt.max_grad_norm)
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.step += 1
            steps_this_run += 1
            self.losses.append(loss_value)
            dt = time.perf_counter() - t0
            avg = (time.perf_counter() - t_start) / steps_this_run
            lr = self.optimizer.param_groups[0]["lr"]
            self._emit(
                "step",
                step=self.step,
                total=total,
                loss=round(loss_value, 6),
                lr=lr,
                sec_per_step=round(dt, 4),
                eta_s=round(avg * (total - self.step), 1),
                memory_mb=_memory_mb(self.device),
            )
            if self.validation_enabled and self.step % cfg.validation.interval == 0 and self.step < total:
                self._validate(self.step)
            interval = cfg.checkpoints.interval
            if interval and self.step % interval == 0 and self.step < total:
                self._save_checkpoint(self.step)
            if self.step < total and self._should_stop():
                path = self._save_checkpoint(self.step)
                self._emit("cancelled", step=self.step, checkpoint=str(path) if path else None, reason=self.stop.reason)
                return TrainResult("cancelled", self.step, losses=self.losses)
        return self._finish(dataset)

    def _should_stop(self) -> bool:
        self.stop.check_parent()
        flag = 1.0 if self.stop.reason else 0.0
        if self.world_size > 1:
            flag = self.accelerator.reduce(torch.tensor(flag, device=self.device), reduction="sum").item()
        if flag and not self.stop.reason:
            self.stop.reason = "another process was stopped"
        return bool(flag)

    def _batches(self, dataset: PrecomputedDataset):
        """Yield collated batches in the plan's order; the plan's position counts only consumed batches."""
        from torch.utils.data import DataLoader

        workers = self.cfg.data.num_dataloader_workers
        while True:
            todo = self.plan.batches_for_epoch(self.plan.epoch)[self.plan.position :]
            if todo:
                if workers > 0:
                    loader = DataLoader(dataset, batch_sampler=todo, num_workers=workers, collate_fn=collate, pin_memory=self.device.type == "cuda")
                    iterator = iter(loader)
                else:
                    iterator = (collate([dataset[i] for i in b]) for b in todo)
                for batch in iterator:
                    self.plan.position += 1
                    yield batch
            self.plan.epoch += 1
            self.plan.position = 0

    def _finish(self, dataset: PrecomputedDataset, resumed_only: bool = False) -> TrainResult:
        cfg, acc = self.cfg, self.accelerator
        if not resumed_only and self.validation_enabled:
            self._validate(self.step)  # samples of the final weights
        digest = hashlib.sha256(b"".join(v.numpy().tobytes() for _, v in sorted(self._trainable_state().items()))).hexdigest()
        if self.world_size > 1:
            from accelerate.utils import gather_object

            digests = gather_object([digest])
        else:
            digests = [digest]
        outputs: dict[str, str] = {}
        if not resumed_only:
            # A final state checkpoint makes a finished run recognisable (re-queueing returns at once).
            self._save_checkpoint(self.step)
        if self.is_main:
            outputs = self._save_weights(self.output_dir, step=self.step)
            outputs["training_config"] = str(self.output_dir / "training_config.yaml")
            samples = self.output_dir / "validation_samples"
            if samples.is_dir():
                outputs["validation_samples"] = str(samples)
            if cfg.hub.push_to_hub:
                from ltx_train_lib.hub import push_to_hub

                outputs["hub"] = push_to_hub(self.output_dir, cfg.hub.hub_model_id, private=cfg.hub.private, config=cfg)
            self._emit("done", step=self.step, total=cfg.optimization.steps, seconds=round(time.perf_counter() - self._t_run, 3),
                       outputs=outputs, rank_digests=digests, final_loss=self.losses[-1] if self.losses else None)
        acc.wait_for_everyone()
        return TrainResult("done", self.step, outputs=outputs, losses=self.losses)
