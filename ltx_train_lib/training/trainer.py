"""The training loop: LoRA (peft) or full fine-tuning of a model family's transformer, resumable at any moment.

Runs under Hugging Face Accelerate (one process, DDP over several, or FSDP2 sharding full fine-tunes and LoRA:
how each checkpoints is :mod:`ltx_train_lib.training.checkpoint_io`). Only rank 0 writes files and events.
SIGTERM/SIGINT (and the death of a watched parent process) stop the run after the current optimizer step with a
resumable checkpoint and a ``cancelled`` event. Model specifics come from the model family
(:mod:`ltx_train_lib.models.family`), the objective from the strategy (:mod:`ltx_train_lib.training.strategy`);
this module names neither a model class nor a conditioning mode. The loop is one unit of ~300 lines because its
steps (accumulate, check, step, emit, validate, checkpoint, stop) share the per-step state and read best in order.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ltx_train_lib.config import TrainerConfig, dump_config
from ltx_train_lib.data import BucketBatchPlan, PrecomputedDataset
from ltx_train_lib.errors import ConfigError, TrainingError
from ltx_train_lib.events import EVENTS_FILE, EventWriter
from ltx_train_lib.fileio import check_writable_dir, translate_write_errors, write_text_atomic
from ltx_train_lib.locks import FolderBusy, describe_owner, folder_lock
from ltx_train_lib.models.registry import family_for_source
from ltx_train_lib.training import checkpoint as ckpt
from ltx_train_lib.training import state as run_state
from ltx_train_lib.training.batches import plan_batches
from ltx_train_lib.training.checkpoint_io import checkpoint_io_for, make_accelerator
from ltx_train_lib.training.listeners import build_listeners, close_listeners
from ltx_train_lib.training.liveness import RankBoard, Watchdog, describe_stall, is_collective_failure, is_lost_peer
from ltx_train_lib.training.model_setup import (
    adamw_implementation,
    build_optimizer,
    build_trainable_model,
    check_optimizer,
)
from ltx_train_lib.training.outputs import lora_health, save_size_estimate, save_weights
from ltx_train_lib.training.quantization import check_quantization, training_cuda_capability
from ltx_train_lib.training.schedule import ScheduleClock
from ltx_train_lib.training.state import config_fingerprint  # noqa: F401 - re-exported for callers
from ltx_train_lib.training.stop import PARENT_PID_ENV, StopFlag, peak_memory_mb  # noqa: F401 - PARENT_PID_ENV re-exported
from ltx_train_lib.training.strategy import build_strategy
from ltx_train_lib.training.validation import (
    check_validation_inputs,
    dataset_frame_rate,
    encode_validation_prompts,
    generate_validation_videos,
)

log = logging.getLogger("ltx_train_lib.trainer")


@dataclass
class TrainResult:
    status: str  # "done" | "cancelled"
    step: int
    outputs: dict[str, str] = field(default_factory=dict)
    losses: list[float] = field(default_factory=list)


def _release_accelerator_memory() -> None:
    """Give back what a validation (or a failed one) held on the GPU before training continues."""
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class Trainer:
    def __init__(self, cfg: TrainerConfig, *, events: EventWriter | None = None, listeners: list | None = None) -> None:
        self.cfg = cfg
        self._given_cfg = cfg
        self.output_dir = Path(cfg.output_dir).expanduser().resolve()
        self.listeners = listeners or []  # the caller's (e.g. the CLI printer), kept across train() calls
        self._run_listeners: list = []  # TensorBoard / W&B, started per run by build_listeners
        self._events = events
        self.stop = StopFlag()
        self.family = family_for_source(cfg.model.model_source)
        self.strategy = build_strategy(cfg.conditioning, cfg.flow_matching, self.family, data=cfg.data,
                                       modalities=cfg.model.modalities)

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
        check_optimizer(cfg.optimization.optimizer_type, cuda=torch.cuda.is_available())
        check_quantization(cfg.acceleration.quantization, training_cuda_capability())
        if cfg.wandb.enabled:
            try:
                import wandb  # noqa: F401
            except ImportError:
                raise ConfigError("wandb.enabled is true but the wandb package is not installed; pip install wandb, or set wandb.enabled: false") from None
        if self.validation_enabled:
            check_validation_inputs(cfg.validation, reference_mode=self.strategy.uses_reference_videos)
        dataset = self.strategy.dataset(cfg.data.preprocessed_data_root)
        self._resolve_model_choices()
        return dataset

    def _resolve_model_choices(self) -> None:
        """What the config left to the family and the dataset, made explicit (and so written to
        training_config.yaml and part of the resume fingerprint): ``model.modalities`` ('auto' -> what the dataset
        allows) and ``lora.target_modules`` (null -> the family's targets for those modalities)."""
        cfg = self.cfg
        model = cfg.model.model_copy(update={"modalities": self.strategy.modalities})
        lora = cfg.lora
        if lora is not None and lora.target_modules is None:
            chosen = self.family.lora_targets_for(self.strategy.modalities)
            lora = lora.model_copy(update={"target_modules": list(chosen)})
        self.cfg = cfg.model_copy(update={"model": model, "lora": lora})

    def _fit_memory(self, dataset: PrecomputedDataset) -> TrainerConfig:
        """``memory.budget_gb``: the cheapest settings whose memory plan fits (:mod:`ltx_train_lib.memory.budget`),
        chosen before anything loads; a run no recipe fits is refused with what would make it fit."""
        self._memory_header = ""
        if self.cfg.memory.budget_gb is None:
            return self.cfg
        from ltx_train_lib.memory.budget import fit_for_training
        from ltx_train_lib.memory.command import token_factor

        res = fit_for_training(self.cfg, self.family, dataset, device=self.device.type, output_dir=self.output_dir,
                               token_factor=token_factor(self.cfg, self.family), world_size=self.world_size)
        log.info("%s", res.summary)
        self._memory_header = "".join(f"# {line}\n" for line in (res.summary, *res.notes))
        return res.config

    @property
    def validation_enabled(self) -> bool:
        return bool(self.cfg.validation.prompts) and self.cfg.validation.interval is not None

    def _mixed_precision(self) -> str:
        mode = self.cfg.acceleration.mixed_precision_mode or "no"
        if mode == "fp16" and not torch.cuda.is_available():
            log.warning("fp16 autocast needs a GPU; training in fp32 on this CPU")
            return "no"
        return mode

    def _sampling_dtype(self) -> torch.dtype:
        """The training dtype for the VAE and the text encoder: bf16 under bf16 mixed precision; under fp16 bf16 too
        where the GPU has it (T5 and the LTX VAE overflow in fp16), else fp32."""
        mode = self._mixed_precision()
        if mode == "bf16" or (mode == "fp16" and torch.cuda.is_available() and torch.cuda.is_bf16_supported()):
            return torch.bfloat16
        return torch.float32

    def _resolve_frame_rate(self, dataset: PrecomputedDataset) -> None:
        """A null validation.frame_rate becomes the dataset's fps (what RoPE saw in training), so samples, the mp4
        and training_config.yaml all carry the rate to sample at in ComfyUI."""
        if self.cfg.validation.frame_rate is None:
            fps = dataset_frame_rate(dataset)
            self.cfg = self.cfg.model_copy(update={"validation": self.cfg.validation.model_copy(update={"frame_rate": fps})})

    def _encode_validation_prompts(self) -> None:
        """Validation and negative prompts, encoded once (rank 0, where validation runs) before the transformer
        reaches the device; the text encoder is freed right after."""
        self.validation_conditions = None
        if not (self.validation_enabled and self.is_main):
            return
        cfg = self.cfg
        self.validation_conditions = encode_validation_prompts(
            self.family,
            cfg.model,
            cfg.validation,
            device=self.device,
            dtype=self._sampling_dtype(),
            load_in_8bit=cfg.acceleration.load_text_encoder_in_8bit,
            encoding=getattr(cfg.data, "text_encoding", None),
        )

    # ------------------------------------------------------------------ state
    def _check_health(self, step: int, weights=None):
        """The LoRA health gate, on every rank (identical weights) before anything of ``step`` is written: the scan
        goes into a ``health`` event (and the weights' headers); an unhealthy LoRA stops the run with one error
        naming the tensors and the fix, and is never written. The last healthy checkpoint stays as it was.
        ``weights``: the gathered weights of :meth:`CheckpointIO.weights` (None: read from the model)."""
        cached = getattr(self, "_health", None)
        if cached is not None and cached[0] == step:
            return cached[1]
        final = step >= self.cfg.optimization.steps
        report = lora_health(self.cfg, self.unwrapped, step, final=final, state_dict=weights)
        if report is None:
            return None
        self._emit("health", step=step, final=final, ok=report.ok, tensors=report.tensors, modules=report.modules,
                   nonfinite=list(report.nonfinite)[:20], zero_modules=len(report.zero_modules),
                   problems=report.problems, warnings=report.warnings, summary=report.summary())
        if not report.ok:
            last = ckpt.latest_state_checkpoint(self.output_dir)
            kept = (f"The last healthy checkpoint is kept at '{last.path}' (with its LoRA files beside it); these "
                    "weights were not saved" if last else "No checkpoint was written yet; these weights were not saved")
            raise TrainingError(f"{report.failure_message(f'the LoRA at step {step}')}. {kept}")
        self._health = (step, report)
        return report

    def _gather_weights(self):
        """The weights as the weight files hold them, gathered collectively under FSDP (None otherwise)."""
        return self.ckpt_io.weights(self.unwrapped, lora=self.cfg.model.training_mode == "lora")

    def _save_checkpoint(self, step: int) -> Path | None:
        """Every rank calls this (under FSDP the gathers and the sharded save are collective); rank 0 writes the
        weight files, prunes and emits. Returns the checkpoint's path on rank 0."""
        from accelerate.utils import gather_object

        weights = self._gather_weights()
        health = self._check_health(step, weights)
        rng = run_state.rng_state(self.generator)
        rng_states = gather_object([rng]) if self.world_size > 1 else [rng]
        self._mark(step, "checkpoint")
        scaler = getattr(self.accelerator, "scaler", None)
        state = run_state.training_state(step, self.scheduler, self.plan, rng_states, scaler, self.losses,
                                         schedule=self.schedule.state_dict())
        meta = {"fingerprint": self.fingerprint, "world_size": self.world_size, "training_mode": self.cfg.model.training_mode,
                "steps": self.cfg.optimization.steps, "dataset": self.dataset_signature}
        if self.is_main:
            self._check_room()
        with self._writing():
            path = self.ckpt_io.save(self.output_dir, step, self.unwrapped, self.optimizer, state, meta)
            if self.is_main:
                self._save_weights(ckpt.checkpoints_dir(self.output_dir), suffix=f"_step_{step:05d}", step=step,
                                   health=health, weights=weights)
                ckpt.prune_checkpoints(self.output_dir, self.cfg.checkpoints.keep_last_n)
        self._emit("checkpoint", step=step, path=str(path))
        self._wait_for_main("checkpoint")
        return path

    def _check_resume(self, dataset: PrecomputedDataset) -> ckpt.StateCheckpoint | None:
        """Before a model loads: the checkpoint this run will resume from, if any, after refusing (naming what
        changed) one made with other settings, process count or dataset, or already past ``optimization.steps``."""
        self.dataset_signature = run_state.dataset_signature(dataset)  # recorded in every checkpoint's meta
        latest = ckpt.latest_state_checkpoint(self.output_dir) if self.cfg.checkpoints.resume else None
        if latest is not None:
            self.ckpt_io.check_format(latest.meta, str(latest.path))
            run_state.check_resumable(latest.meta, str(latest.path), self.fingerprint, self.world_size,
                                      dataset=self.dataset_signature, data_root=str(dataset.root), steps=self.cfg.optimization.steps)
        return latest

    def _resume(self) -> str | None:
        """Restore the checkpoint :meth:`_check_resume` chose. A changed ``optimization.steps`` re-bases the
        learning-rate schedule (:class:`~ltx_train_lib.training.schedule.ScheduleClock`): continuous at the resume
        step, at its end value at the new total."""
        opt = self.cfg.optimization
        self.schedule = ScheduleClock(opt.steps)
        latest = self._resume_point
        if latest is None:
            return None
        state = self.ckpt_io.load(latest, self.unwrapped, self.optimizer)
        self.scheduler.load_state_dict(state["scheduler"])
        self.plan.load_state_dict(state["plan"])
        if state.get("scaler") and getattr(self.accelerator, "scaler", None):
            self.accelerator.scaler.load_state_dict(state["scaler"])
        run_state.set_rng_state(self.generator, state["rng"][self.rank])
        self.step = int(state["step"])
        self.losses = list(state.get("losses", []))
        saved = ScheduleClock.from_state_dict(state.get("schedule"), opt.steps)
        clock = saved.rebased(self.step, opt.steps) if self.step < opt.steps else saved
        if clock is not saved and saved.position(self.step) >= saved.total:
            log.warning("optimization.steps changed to %d, but the learning-rate schedule had already ended at step %d: "
                        "the added steps run at its end value", opt.steps, self.step)
        elif clock is not saved:
            log.info("optimization.steps changed to %d: the learning-rate schedule is re-based from step %d to end there",
                     opt.steps, self.step)
        if not clock.is_identity:

            def factor(step: int, clock: ScheduleClock = clock) -> float:
                return clock.factor(opt.scheduler_type, opt.scheduler_params, step, opt.learning_rate, opt.warmup_steps)

            self.scheduler.lr_lambdas = [factor] * len(self.scheduler.lr_lambdas)
        self.schedule = clock
        return str(latest.path)

    # ------------------------------------------------------------------ outputs
    def _kept_hint(self) -> str:
        latest = ckpt.latest_state_checkpoint(self.output_dir)
        if latest is None:
            return "No checkpoint of this run was written yet."
        return f"Nothing written before is lost: the newest checkpoint ({latest.path}) is kept, and running again resumes from it."

    def _check_room(self) -> None:
        """Free space for one checkpoint save (weights, optimizer state and weight files), before writing it."""
        check_writable_dir(self.output_dir, "output_dir", needed_bytes=self._save_bytes, hint=self._kept_hint())

    @contextlib.contextmanager
    def _writing(self):
        """Around the writes into output_dir: an OSError (read-only, no permission, disk full) becomes one OutputError
        naming output_dir, the problem, the fix and what is kept."""
        with translate_write_errors(self.output_dir, "output_dir", self._kept_hint()):
            yield

    def _save_weights(self, folder: Path, suffix: str = "", step: int = 0, health=None, weights=None) -> dict[str, str]:
        return save_weights(self.cfg, self.family, self.unwrapped, folder, model_label=self.model_label, suffix=suffix, step=step,
                            components=self.components, frame_rates=self.frame_rates, health=health, state_dict=weights)

    def _validate(self, step: int) -> None:
        if not self.validation_enabled:
            return
        self._mark(step, "validation")
        if self.is_main:
            model = self.unwrapped
            model.eval()
            try:
                # Validation must not disturb the training random streams (exact resume depends on them).
                with torch.random.fork_rng(devices=[]):
                    paths = generate_validation_videos(self.components, model, self.cfg.validation, step, self.output_dir,
                                                       self.device, reference_mode=self.strategy.uses_reference_videos,
                                                       conditions=self.validation_conditions)
            except Exception as exc:  # noqa: BLE001 - samples are a view of training, never a reason to lose it
                log.warning("validation at step %d failed: %s", step, exc)
                self._emit("validation_failed", step=step, message=f"{type(exc).__name__}: {exc}"[:2000])
                paths = None
            finally:
                model.train()
                _release_accelerator_memory()
            if paths is None:
                self._wait_for_main("validation")
                return
            self._emit("sample", step=step, paths=[str(p) for p in paths], prompts=list(self.cfg.validation.prompts))
        self._wait_for_main("validation")

    # ------------------------------------------------------------------ main
    def train(self) -> TrainResult:
        self.stop.install()  # from the start: a Cancel during model loading must not be lost
        self._t_run = time.perf_counter()  # done.seconds: this run's wall time, model loading included
        # From the start too: a launcher or ComfyUI that dies while the model loads must not leave this process behind.
        self.watchdog = Watchdog(self.stop, grace_s=self.cfg.distributed.orphan_grace_s)
        self.watchdog.start()
        self._board: RankBoard | None = None
        try:
            return self._setup_and_train()
        finally:
            self.watchdog.halt()
            self.stop.uninstall()
            close_listeners(self._run_listeners)  # they close on the last event; this covers an exit without one
            self._run_listeners = []

    @property
    def orphaned(self) -> bool:
        """The launcher or the ComfyUI process that started this run died (the run stopped for that)."""
        watchdog = getattr(self, "watchdog", None)
        return watchdog is not None and watchdog.orphaned

    def _setup_and_train(self) -> TrainResult:
        from accelerate.utils import InitProcessGroupKwargs

        # Bad input is reported before anything is written (not even an events file); output_dir is checked next.
        dataset = self._check_inputs()
        cfg = self.cfg  # with the choices _check_inputs resolved
        if int(os.environ.get("WORLD_SIZE", "1")) == 1:
            # In-process reuse (tests, notebooks): start from a clean accelerate state each run.
            from accelerate.state import AcceleratorState

            AcceleratorState._reset_state(reset_partial_state=True)
        # cpu=True on machines without a GPU: with several processes accelerate then uses gloo (MULTI_CPU).
        # The collective timeout: a stalled process stops the run with its name (see _collective_failures), not
        # after torch's 30 minutes of silence.
        timeout = InitProcessGroupKwargs(timeout=timedelta(seconds=cfg.distributed.collective_timeout_s))
        self.accelerator = make_accelerator(self._mixed_precision(), cpu=not torch.cuda.is_available(),
                                            kwargs_handlers=[timeout])
        acc = self.accelerator
        self.device = acc.device
        self.rank, self.world_size, self.is_main = acc.process_index, acc.num_processes, acc.is_main_process
        self._board = RankBoard.from_process_group(self.rank, self.world_size)
        self.watchdog.attach(self._board)
        self._mark(0, "starting")
        self.plan = BucketBatchPlan(dataset, cfg.optimization.batch_size, cfg.seed, self.rank, self.world_size)
        cfg = self.cfg = self._fit_memory(dataset)  # before the fingerprint and any file: a budget may change what trains
        self.ckpt_io = checkpoint_io_for(acc, cfg)  # plain (one process, DDP) or sharded (FSDP), chosen once
        if self._events is None:
            # complete=True: a missing field is a trainer bug, caught by the tests that run it
            self._events = EventWriter(self.output_dir / EVENTS_FILE, echo_stdout=os.environ.get("LTX_TRAIN_EVENTS_STDOUT") == "1",
                                       complete=True)
        self.events = self._events
        # Of the config as given (before _check_inputs resolved 'auto' choices): what a re-run with the same config
        # (run_pipeline's check, a re-queued node) computes, so it resumes or finds the run finished.
        self.fingerprint = config_fingerprint(self._given_cfg)
        with contextlib.ExitStack() as stack:
            if self.is_main:
                stack.enter_context(self._own_output_dir())
            try:
                self._resume_point = self._check_resume(dataset)
                with self._collective_failures():
                    return self._train(dataset)
            except Exception as exc:
                self._emit("error", message=str(exc) or type(exc).__name__, step=getattr(self, "step", 0))
                raise

    @contextlib.contextmanager
    def _collective_failures(self):
        """A collective that timed out (or lost a peer) becomes one TrainingError naming the rank that stalled, read
        from the ranks' board (:mod:`ltx_train_lib.training.liveness`), and the setting to change."""
        try:
            yield
        except RuntimeError as exc:
            if self.world_size < 2 or not is_collective_failure(exc):
                raise
            cause = f"a collective gave up ({str(exc).strip().splitlines()[0][:300]})"
            if self._board is None:
                message = (f"distributed training stopped on rank {self.rank}: {cause}; another process stalled or "
                           f"exited. If it was only slow, raise distributed.collective_timeout_s (now "
                           f"{self.cfg.distributed.collective_timeout_s:g} s)")
            else:
                message = describe_stall(self._board.positions(), self.rank, self.cfg.distributed.collective_timeout_s,
                                         cause=cause, lost_peer=is_lost_peer(exc))
            raise TrainingError(f"{message}. {self._kept_hint()}") from None

    def _mark(self, step: int, phase: str) -> None:
        """Tell the other ranks where this one is (named in their message if it stalls)."""
        if self._board is None:
            return
        try:
            self._board.mark(step, phase)
        except Exception as exc:  # noqa: BLE001 - the store went away with machine 0's launcher; training goes on
            log.warning("cannot publish this rank's position any more (%s)", exc)
            self._board = None
            self.watchdog.attach(None)

    def _wait_for_main(self, what: str) -> None:
        """The barrier after a phase only rank 0 works in (``what``: checkpoint, validation, final save): the others
        wait as long as rank 0 is alive, however long the phase takes, instead of at most the collective timeout."""
        if self._board is not None:
            self._board.wait_for_main(what, self.cfg.distributed.collective_timeout_s)
        self.accelerator.wait_for_everyone()

    @contextlib.contextmanager
    def _own_output_dir(self):
        """One trainer per output folder (a second one stops at once, naming the first); then the temp files an
        interrupted run left (half-written checkpoints, weights) are removed: nobody else can be writing them.
        First of all the folder must be writable (read-only, no permission, a file in the way: one OutputError)."""
        check_writable_dir(self.output_dir, "output_dir")
        try:
            with folder_lock(self.output_dir, "trainer"):
                removed = ckpt.remove_interrupted_writes(self.output_dir)
                if removed:
                    log.info("removed %d temporary file(s) left by an interrupted run in %s", len(removed), self.output_dir)
                yield
        except FolderBusy as busy:
            raise TrainingError(
                f"output_dir '{self.output_dir}' is in use by another {describe_owner(busy.owner)}; wait for it to "
                "finish, cancel it, or set output_dir to another folder"
            ) from None

    def _train(self, dataset: PrecomputedDataset) -> TrainResult:
        from ltx_train_lib.models.loader import load_components

        self._resolve_frame_rate(dataset)
        cfg, acc = self.cfg, self.accelerator
        torch.manual_seed(cfg.seed)  # identical adapter initialisation on every rank
        random.seed(cfg.seed)
        np.random.seed(cfg.seed)
        self.generator = torch.Generator().manual_seed(cfg.seed * 1000 + self.rank)  # per-rank noise stream

        base_dtype = torch.bfloat16 if (cfg.model.training_mode == "lora" and self._mixed_precision() == "bf16") else torch.float32
        # No text encoder: the validation prompts are encoded once below and the encoder freed (the VAE stays on the
        # CPU in the training dtype and visits the device only while a validation encodes or decodes).
        wanted = ("transformer", "vae", "scheduler") if self.validation_enabled else ("transformer",)
        self.components = load_components(
            cfg.model.model_source,
            wanted,
            transformer_dtype=base_dtype,
            vae_dtype=self._sampling_dtype(),
            vae_path=cfg.model.vae_path,
            audio_vae_path=cfg.model.audio_vae_path,
        )
        self._encode_validation_prompts()
        self.model_label = self.components.label
        self.strategy.use_components(self.components)  # the checkpoint's RoPE rule (causal offset) reaches the loss
        self.frame_rates = dataset.fps_counts()  # the weights' header and card name the fps to sample at
        self.model_dtype = base_dtype
        transformer, params = build_trainable_model(cfg, self.family, self.components.transformer, self.device)
        self._save_bytes = save_size_estimate(cfg, params)
        if self.is_main:
            self._check_room()  # before training spends any time

        opt = cfg.optimization
        optimizer, self.scheduler = build_optimizer(opt, params)
        if opt.optimizer_type == "adamw" and opt.optimizer_implementation == "auto":  # recorded in training_config.yaml
            opt = opt.model_copy(update={"optimizer_implementation": adamw_implementation("auto", params)})
            cfg = self.cfg = cfg.model_copy(update={"optimization": opt})
        self.model, self.optimizer = acc.prepare(transformer, optimizer)
        self.unwrapped = acc.unwrap_model(self.model)
        self.step = 0
        self.losses: list[float] = []
        self._health = None  # (step, LoraHealth) of the last scan, so the final save reuses the final checkpoint's
        resumed_from = self._resume()

        if self.is_main:
            with self._writing():
                write_text_atomic(self.output_dir / "training_config.yaml", self._memory_header + dump_config(cfg))
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
            loss_sum = None
            accum = opt.gradient_accumulation_steps
            for micro in range(accum):
                self._mark(self.step + 1, "loading batch")
                batch = next(batches)
                self._mark(self.step + 1, "forward/backward")
                sync = micro == accum - 1
                with (nullcontext() if sync else acc.no_sync(self.model)), acc.autocast():
                    out = self.strategy.loss(self.model, batch, self.generator, device=self.device, model_dtype=self.model_dtype)
                    acc.backward(out.loss / accum)
                # On the device: one host sync per step (the .item() below), not one per micro-batch.
                micro_loss = out.loss.detach().float()
                loss_sum = micro_loss if loss_sum is None else loss_sum + micro_loss
            loss_value, stop_agreed = self._step_loss_and_stop(loss_sum / accum)
            if not np.isfinite(loss_value):
                self.optimizer.zero_grad(set_to_none=True)
                last = ckpt.latest_state_checkpoint(self.output_dir)
                raise TrainingError(
                    f"the loss became {loss_value} at step {self.step + 1}; training stopped without saving these weights. "
                    + (f"The last good checkpoint is kept at '{last.path}'. " if last else "")
                    + "Lower optimization.learning_rate, enable gradient clipping (max_grad_norm) or check the dataset"
                )
            self._mark(self.step + 1, "optimizer step")
            if opt.max_grad_norm > 0:
                # The prepared model's parameters (FSDP replaces them with shards, and accelerate's FSDP path
                # recognises the model by its full parameter list); frozen ones have no gradient and are skipped.
                acc.clip_grad_norm_(self.model.parameters(), opt.max_grad_norm)
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
                memory_mb=peak_memory_mb(self.device),
            )
            interval = cfg.checkpoints.interval
            if interval and self.step % interval == 0 and self.step < total:
                self._save_checkpoint(self.step)  # before this step's validation: a failing sampler costs nothing
            if self.validation_enabled and self.step % cfg.validation.interval == 0 and self.step < total:
                self._validate(self.step)
            if self.step < total and (stop_agreed or self._should_stop(collective=False)):
                path = self._save_checkpoint(self.step)
                self._emit("cancelled", step=self.step, checkpoint=str(path) if path else None, reason=self.stop.reason)
                return TrainResult("cancelled", self.step, losses=self.losses)
        return self._finish(dataset)

    def _step_loss_and_stop(self, loss: torch.Tensor) -> tuple[float, bool]:
        """This step's loss (the mean over processes) and whether any process is stopping, in one collective: under
        DDP the loss and the stop flag used to be two all-reduces (and two host syncs) per step. A stop that
        arrives after this point is seen by the next step's check, or by the local check below on one process."""
        if self.world_size == 1:
            return loss.item(), False  # the local flag is read after the step (_should_stop(collective=False))
        self.stop.check_parent()
        flag = torch.tensor([1.0 if self.stop.reason else 0.0], device=loss.device)
        summed = self.accelerator.reduce(torch.cat([loss.reshape(1), flag]), reduction="sum").tolist()
        if summed[1] and not self.stop.reason:
            self._stopped_by_another()
        return summed[0] / self.world_size, bool(summed[1])

    def _should_stop(self, collective: bool = True) -> bool:
        """Whether the run stops here. ``collective=False`` (inside the step loop on several processes, where the
        step's reduction already agreed on the flag) only counts on one process: a local flag set after that
        reduction waits for the next step's, so every process stops at the same step."""
        self.stop.check_parent()
        if not collective and self.world_size > 1:
            return False
        flag = 1.0 if self.stop.reason else 0.0
        if self.world_size > 1:
            flag = self.accelerator.reduce(torch.tensor(flag, device=self.device), reduction="sum").item()
        if flag and not self.stop.reason:
            self._stopped_by_another()
        return bool(flag)

    def _stopped_by_another(self) -> None:
        """Another process asked to stop first. Its cause (a launcher that died) is often this process's too, only
        not seen yet by the watchdog's poll: look once more, so the event names the cause, not just 'another'."""
        watchdog = getattr(self, "watchdog", None)
        if watchdog is not None:
            watchdog.check()
        if not self.stop.reason:
            self.stop.reason = "another process was stopped"

    def _batches(self, dataset: PrecomputedDataset):
        """Collated batches in the plan's order; the plan's position counts only consumed batches (see
        :mod:`ltx_train_lib.training.batches` for what keeps resume exact with loader workers)."""
        return plan_batches(dataset, self.plan, workers=self.cfg.data.num_dataloader_workers, seed=self.cfg.seed,
                            rank=self.rank, pin_memory=self.device.type == "cuda")

    def _finish(self, dataset: PrecomputedDataset, resumed_only: bool = False) -> TrainResult:
        """Final weights and a resumable checkpoint first, then the final samples: nothing a failing validation or
        Hub push does can cost the run."""
        cfg = self.cfg
        self._mark(self.step, "finishing")
        digest = self.ckpt_io.digest(self.unwrapped)
        if self.world_size > 1:
            from accelerate.utils import gather_object

            digests = gather_object([digest])
        else:
            digests = [digest]
        outputs: dict[str, str] = {}
        if not resumed_only:
            # A final state checkpoint makes a finished run recognisable (re-queueing returns at once).
            self._save_checkpoint(self.step)
        weights = self._gather_weights()  # collective under FSDP: the consolidated full-precision weights on rank 0
        health = self._check_health(self.step, weights)  # the checkpoint's scan; made here after a resume
        if self.is_main:
            self._check_room()
            with self._writing():
                outputs = self._save_weights(self.output_dir, step=self.step, health=health, weights=weights)
            outputs["training_config"] = str(self.output_dir / "training_config.yaml")
        if not resumed_only and self.validation_enabled:
            self._validate(self.step)  # samples of the final weights
        if self.is_main:
            samples = self.output_dir / "validation_samples"
            if samples.is_dir():
                outputs["validation_samples"] = str(samples)
            if cfg.hub.push_to_hub:
                from ltx_train_lib.hub import push_to_hub

                outputs["hub"] = push_to_hub(self.output_dir, cfg.hub.hub_model_id, private=cfg.hub.private, config=cfg)
            self._emit("done", step=self.step, total=cfg.optimization.steps, seconds=round(time.perf_counter() - self._t_run, 3),
                       outputs=outputs, rank_digests=digests, final_loss=self.losses[-1] if self.losses else None)
        self._wait_for_main("final save")
        return TrainResult("done", self.step, outputs=outputs, losses=self.losses)
