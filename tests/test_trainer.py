"""The trainer on the tiny model: learning, outputs, exact resume after SIGKILL, cancel, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors import safe_open
from safetensors.torch import load_file

from ltx_train_lib.config import config_from_dict
from ltx_train_lib.data import BucketBatchPlan, PrecomputedDataset, collate
from ltx_train_lib.errors import ConfigError, DatasetError, TrainingError
from ltx_train_lib.events import read_events
from ltx_train_lib.training import checkpoint as ckpt
from ltx_train_lib.training.trainer import Trainer
from tests.conftest import make_precomputed, tiny_config_dict

ROOT = Path(__file__).resolve().parents[1]


def _train(cfg_dict: dict):
    return Trainer(config_from_dict(cfg_dict)).train()


def _write_cfg(path: Path, cfg: dict) -> Path:
    path.write_text(yaml.safe_dump(cfg))
    return path


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def test_loss_falls_when_overfitting_one_sample(tmp_path: Path, tiny_model_dir: Path) -> None:
    root = make_precomputed(tmp_path / "ds", [(2, 2, 2)])
    cfg = tiny_config_dict(
        root, tmp_path / "out", optimization__steps=50, optimization__batch_size=1, optimization__learning_rate=1e-2,
        checkpoints__interval=None, flow_matching__timestep_sampling_mode="uniform",
        flow_matching__timestep_sampling_params={"min_value": 0.5, "max_value": 0.5},
    )
    result = _train(cfg)
    assert result.status == "done" and len(result.losses) == 50
    assert np.mean(result.losses[-10:]) < 0.92 * np.mean(result.losses[:10])


@pytest.mark.slow
def test_compiled_blocks_train_on_cpu_and_save_plain_lora_keys(tmp_path: Path, tiny_model_dir: Path) -> None:
    # acceleration.compile_with_inductor now compiles on the CPU too: the compiled run must learn, say which AdamW
    # ran, and write the same keys as an eager run (no torch.compile '_orig_mod.' fragments).
    root = make_precomputed(tmp_path / "ds", [(2, 2, 2)])
    common = dict(optimization__steps=30, optimization__batch_size=1, optimization__learning_rate=1e-2,
                  checkpoints__interval=None, flow_matching__timestep_sampling_mode="uniform",
                  flow_matching__timestep_sampling_params={"min_value": 0.5, "max_value": 0.5})
    compiled = Trainer(config_from_dict(tiny_config_dict(root, tmp_path / "compiled", acceleration__compile_with_inductor=True,
                                                         **common)))
    result = compiled.train()
    from torch._dynamo.eval_frame import OptimizedModule

    assert all(isinstance(b, OptimizedModule) for b in compiled.unwrapped.transformer_blocks)
    assert result.status == "done" and np.mean(result.losses[-5:]) < 0.92 * np.mean(result.losses[:5])
    eager = _train(tiny_config_dict(root, tmp_path / "eager", **common))
    assert abs(eager.losses[0] - result.losses[0]) < 1e-4  # same first step, compiled or not
    written = yaml.safe_load((tmp_path / "compiled" / "training_config.yaml").read_text())
    assert written["optimization"]["optimizer_implementation"] == "fused"  # 'auto' resolved and recorded
    keys = set(_tensors(Path(result.outputs["lora"])))
    assert keys == set(_tensors(Path(eager.outputs["lora"]))) and not any("_orig_mod" in k for k in keys)


def test_adamw_implementation_auto_fused_where_torch_has_it_and_explicit_choices_kept() -> None:
    from ltx_train_lib.training.model_setup import adamw_implementation, build_optimizer

    params = [torch.nn.Parameter(torch.zeros(3))]
    assert adamw_implementation("auto", params) == "fused"  # torch has a fused CPU AdamW for fp32
    assert adamw_implementation("foreach", params) == "foreach"
    assert adamw_implementation("auto", [torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))]) == "foreach"
    with pytest.raises(ConfigError, match="no fused AdamW for parameters on cpu/float64"):
        adamw_implementation("fused", [torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))])
    cfg = config_from_dict(tiny_config_dict(Path("unused"), Path("unused"), optimization__optimizer_implementation="for_loop"))
    optimizer, _ = build_optimizer(cfg.optimization, params)
    assert optimizer.defaults["fused"] is False and optimizer.defaults["foreach"] is False
    optimizer, _ = build_optimizer(cfg.optimization.model_copy(update={"optimizer_implementation": "auto"}), params)
    assert optimizer.defaults["fused"] is True
    # The same math: one step of each implementation moves the weights alike (to float rounding).
    moved = []
    for impl in ("for_loop", "foreach", "fused"):
        p = torch.nn.Parameter(torch.linspace(-1, 1, 64))
        p.grad = torch.linspace(1, -2, 64)
        opt, _ = build_optimizer(cfg.optimization.model_copy(update={"optimizer_implementation": impl}), [p])
        opt.step()
        moved.append(p.detach().clone())
    assert torch.allclose(moved[0], moved[1], atol=1e-7) and torch.allclose(moved[0], moved[2], atol=1e-7)


def test_outputs_keys_metadata_and_events(tmp_path: Path, precomputed_dataset: Path, tiny_model_dir: Path) -> None:
    targets = ["to_q", "to_k", "to_v", "to_out.0", "ff.net.0.proj", "ff.net.2", "proj_in", "proj_out"]
    cfg = tiny_config_dict(precomputed_dataset, tmp_path / "out", lora={"rank": 4, "alpha": 8, "target_modules": targets})
    result = _train(cfg)
    out = tmp_path / "out"
    diff = _tensors(out / "lora_weights.safetensors")
    comfy = _tensors(out / "lora_weights_comfy.safetensors")
    assert all(k.startswith("transformer.") for k in diff)
    assert all(k.startswith("diffusion_model.") for k in comfy)
    modules = {k.rsplit(".lora_", 1)[0] for k in comfy if ".lora_" in k}
    # every adapted module, in every block, carries A, B and (alpha != rank) an alpha tensor
    for block in (0, 1):
        for t in ["attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0", "attn2.to_q", "attn2.to_out.0", "ff.net.0.proj", "ff.net.2"]:
            assert f"diffusion_model.transformer_blocks.{block}.{t}" in modules
    assert "diffusion_model.patchify_proj" in modules and "diffusion_model.proj_out" in modules
    assert not any(".proj_in." in k for k in comfy), "proj_in must be renamed patchify_proj for ComfyUI"
    for m in modules:
        assert comfy[f"{m}.alpha"].item() == 8.0
        assert torch.equal(comfy[f"{m}.lora_A.weight"], diff["transformer." + m.removeprefix("diffusion_model.").replace("patchify_proj", "proj_in") + ".lora_A.weight"])
    with safe_open(str(out / "lora_weights.safetensors"), "pt") as fh:
        meta = fh.metadata()
    assert meta["rank"] == "4" and meta["alpha"] == "8" and "tiny" in meta["base_model"] and "random weights" in meta["base_model"]
    saved_cfg = yaml.safe_load((out / "training_config.yaml").read_text())
    assert saved_cfg["lora"]["alpha"] == 8 and saved_cfg["output_dir"] == str(out)
    events = read_events(out / "events.jsonl")
    kinds = [e["event"] for e in events]
    assert kinds[0] == "started" and kinds[-1] == "done" and kinds.count("step") == 6
    step_events = [e for e in events if e["event"] == "step"]
    assert [e["step"] for e in step_events] == list(range(1, 7))
    assert all({"loss", "lr", "sec_per_step", "memory_mb", "eta_s", "total"} <= set(e) for e in step_events)
    assert [e["step"] for e in events if e["event"] == "checkpoint"] == [2, 4, 6]
    # keep_last_n = 2: only steps 4 and 6 remain
    assert [c.step for c in ckpt.list_state_checkpoints(out)] == [4, 6]
    assert sorted(p.name for p in (out / "checkpoints").glob("lora_weights_step_*.safetensors")) == [
        "lora_weights_step_00004.safetensors", "lora_weights_step_00004_comfy.safetensors",
        "lora_weights_step_00006.safetensors", "lora_weights_step_00006_comfy.safetensors",
    ]
    assert result.outputs["lora_comfy"] == str(out / "lora_weights_comfy.safetensors")


def test_batches_stay_within_one_bucket_and_plan_resumes(precomputed_dataset: Path) -> None:
    ds = PrecomputedDataset(precomputed_dataset)
    assert sorted(len(v) for v in ds.buckets().values()) == [2, 4]
    plan = BucketBatchPlan(ds, batch_size=2, seed=3)
    seq = [plan.next_batch() for _ in range(9)]
    for batch in seq:
        assert len({ds.samples[i].shape for i in batch}) == 1
    again = BucketBatchPlan(ds, batch_size=2, seed=3)
    for _ in range(4):
        again.next_batch()
    resumed = BucketBatchPlan(ds, batch_size=2, seed=3)
    resumed.load_state_dict(again.state_dict())
    assert [resumed.next_batch() for _ in range(5)] == seq[4:]
    # two ranks get disjoint batches of the same count
    r0 = BucketBatchPlan(ds, 1, 3, rank=0, world_size=2).batches_for_epoch(0)
    r1 = BucketBatchPlan(ds, 1, 3, rank=1, world_size=2).batches_for_epoch(0)
    assert len(r0) == len(r1) == 3 and not set(map(tuple, r0)) & set(map(tuple, r1))


def test_full_finetune_writes_model_weights(tmp_path: Path, precomputed_dataset: Path, tiny_model_dir: Path) -> None:
    cfg = tiny_config_dict(precomputed_dataset, tmp_path / "out", model__training_mode="full", lora=None, optimization__steps=2, checkpoints__interval=None)
    result = _train(cfg)
    weights = _tensors(tmp_path / "out" / "model_weights.safetensors")
    assert result.status == "done"
    assert "transformer_blocks.0.attn1.to_q.weight" in weights and not any("_orig_mod" in k for k in weights)
    assert weights["proj_in.weight"].dtype == torch.float32


def test_validation_videos_text_and_image_to_video(tmp_path: Path, precomputed_dataset: Path, tiny_model_dir: Path) -> None:
    from PIL import Image

    img = tmp_path / "first.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (80, 100, 3), dtype=np.uint8)).save(img)
    cfg = tiny_config_dict(
        precomputed_dataset, tmp_path / "out", optimization__steps=2, checkpoints__interval=None,
        validation={"prompts": ["a red square", "a dog"], "images": [str(img), str(img)], "interval": 2, "video_dims": [64, 32, 9],
                    "inference_steps": 2, "videos_per_prompt": 2, "frame_rate": 12},
    )
    _train(cfg)
    samples = tmp_path / "out" / "validation_samples"
    names = sorted(p.name for p in samples.glob("*.mp4"))
    assert names == [f"step_{s:06d}_p{p}_v{v}.mp4" for s in (0, 2) for p in (0, 1) for v in (0, 1)]
    from ltx_train_lib.media import read_video_frames

    frames, fps = read_video_frames(samples / names[-1])
    assert frames.shape == (9, 32, 64, 3) and round(fps) == 12
    assert json.loads((samples / "prompts.json").read_text())[names[0]] == "a red square"
    events = read_events(tmp_path / "out" / "events.jsonl")
    assert [e["step"] for e in events if e["event"] == "sample"] == [0, 2]


def _run_cli(cfg_path: Path, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "train.py"), str(cfg_path), "--disable_progress_bars", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True,
    )


def _wait_for_event(events_path: Path, predicate, proc: subprocess.Popen, timeout: float = 600) -> dict:
    # Generous: a loaded 2-core machine can take minutes to import torch and load the model; success returns at once.
    deadline = time.time() + timeout
    while time.time() < deadline:
        for ev in read_events(events_path):
            if predicate(ev):
                return ev
        if proc.poll() is not None:
            raise AssertionError(f"trainer exited early:\n{proc.stdout.read()}")
        time.sleep(0.02)
    raise AssertionError("timed out waiting for event")


@pytest.mark.slow
def test_sigkill_then_resume_equals_uninterrupted_run(tmp_path: Path, precomputed_dataset: Path, tiny_model_dir: Path) -> None:
    common = dict(optimization__steps=120, checkpoints__interval=10, checkpoints__keep_last_n=2, optimization__learning_rate=5e-3,
                  lora={"rank": 4, "alpha": 4, "dropout": 0.1, "target_modules": ["to_q", "to_k", "to_v", "to_out.0"]},
                  conditioning={"first_frame_conditioning_p": 0.5}, optimization__gradient_accumulation_steps=2,
                  optimization__scheduler_type="cosine", optimization__warmup_steps=5)
    full_cfg = _write_cfg(tmp_path / "full.yaml", tiny_config_dict(precomputed_dataset, tmp_path / "full", **common))
    kill_cfg = _write_cfg(tmp_path / "kill.yaml", tiny_config_dict(precomputed_dataset, tmp_path / "kill", **common))
    full = _run_cli(full_cfg)
    victim = _run_cli(kill_cfg)
    _wait_for_event(tmp_path / "kill" / "events.jsonl", lambda e: e["event"] == "step" and e["step"] >= 33, victim)
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait(30)
    assert full.wait(300) == 0, full.stdout.read()
    assert not (tmp_path / "kill" / "lora_weights.safetensors").exists()
    # a half-written checkpoint folder (as a crash mid-save would leave) is never picked up
    (tmp_path / "kill" / "checkpoints" / ".training_state_step_00099.abc.tmp").mkdir()
    latest = ckpt.latest_state_checkpoint(tmp_path / "kill")
    assert latest is not None and latest.step in (30, 40)
    resumed = _run_cli(kill_cfg)
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out
    assert "resumed from" in out
    started = [e for e in read_events(tmp_path / "kill" / "events.jsonl") if e["event"] == "started"]
    assert started[-1]["step"] == latest.step and started[-1]["resumed_from"].endswith(latest.path.name)
    a = _tensors(tmp_path / "full" / "lora_weights.safetensors")
    b = _tensors(tmp_path / "kill" / "lora_weights.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after resume"


@pytest.mark.slow
def test_sigterm_saves_checkpoint_and_requeue_resumes(tmp_path: Path, precomputed_dataset: Path, tiny_model_dir: Path) -> None:
    cfg = _write_cfg(tmp_path / "c.yaml", tiny_config_dict(precomputed_dataset, tmp_path / "o", optimization__steps=400, checkpoints__interval=None))
    proc = _run_cli(cfg)
    _wait_for_event(tmp_path / "o" / "events.jsonl", lambda e: e["event"] == "step" and e["step"] >= 5, proc)
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(60)
    events = read_events(tmp_path / "o" / "events.jsonl")
    cancelled = [e for e in events if e["event"] == "cancelled"]
    assert len(cancelled) == 1 and cancelled[0]["reason"] == "SIGTERM"
    step = cancelled[0]["step"]
    assert Path(cancelled[0]["checkpoint"]).name == f"training_state_step_{step:05d}"
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)
    # re-queue with fewer total steps than already done would finish at once; resume continues from `step`
    cfg_dict = yaml.safe_load(cfg.read_text())
    cfg_dict["optimization"]["steps"] = step + 3
    _write_cfg(cfg, cfg_dict)
    again = _run_cli(cfg)
    out, _ = again.communicate(timeout=120)
    assert again.returncode == 0, out
    started = [e for e in read_events(tmp_path / "o" / "events.jsonl") if e["event"] == "started"]
    assert started[-1]["step"] == step
    steps = [e["step"] for e in read_events(tmp_path / "o" / "events.jsonl") if e["event"] == "step"]
    assert steps[-3:] == [step + 1, step + 2, step + 3]


def test_changed_settings_refuse_to_resume(tmp_path: Path, precomputed_dataset: Path, tiny_model_dir: Path) -> None:
    _train(tiny_config_dict(precomputed_dataset, tmp_path / "o", optimization__steps=2))
    with pytest.raises(TrainingError, match="different training settings"):
        _train(tiny_config_dict(precomputed_dataset, tmp_path / "o", optimization__steps=4, optimization__learning_rate=0.5))


def _train_until(cfg_dict: dict, stop_at: int, *, sigterm_group: bool = False):
    """Train; after step ``stop_at`` the run stops as on a cancel (a resumable checkpoint, then ``cancelled``): by a
    SIGTERM from another process to this one and its children (``sigterm_group``: what ``jobs.cancel`` does to a job's
    process group, loader workers included) or by setting the stop flag."""
    import multiprocessing

    trainer = Trainer(config_from_dict(cfg_dict))

    def stop(record: dict) -> None:
        if record["event"] == "step" and record["step"] == stop_at:
            if not sigterm_group:
                trainer.stop.reason = "test"
                return
            workers = multiprocessing.active_children()
            assert workers, "expected DataLoader worker processes"
            # from another process: torch's workers exit quietly on a SIGTERM from their parent, not on a cancel's
            pids = [*(w.pid for w in workers), os.getpid()]
            subprocess.run([sys.executable, "-c", f"import os, signal\nfor p in {pids}: os.kill(p, signal.SIGTERM)"], check=True)
            time.sleep(0.5)
            # a worker killed by it would crash the run at its next batch (or at once, from torch's SIGCHLD handler)
            assert all(w.is_alive() for w in workers), "a loader worker died of the cancel's SIGTERM"

    trainer.listeners = [stop]
    return trainer.train()


def test_sigterm_with_loader_workers_and_lora_dropout_then_resume_equals_uninterrupted_run(
    tmp_path: Path, precomputed_dataset: Path, tiny_model_dir: Path
) -> None:
    # Two faults this caught: a DataLoader start drew its workers' base seed from the global torch RNG, the stream LoRA
    # dropout uses (a run resumed mid-epoch, one more loader start, ended 3e-3 away); and a cancel (SIGTERM to the whole
    # process group) killed the loader workers, which crashed the run instead of letting it stop after the step.
    common = dict(optimization__steps=6, checkpoints__interval=None, data__num_dataloader_workers=2,
                  lora={"rank": 4, "alpha": 4, "dropout": 0.1, "target_modules": ["to_q", "to_k", "to_v", "to_out.0"]})
    assert len(BucketBatchPlan(PrecomputedDataset(precomputed_dataset), 2, 7).batches_for_epoch(0)) == 3  # 4: mid-epoch
    assert _train(tiny_config_dict(precomputed_dataset, tmp_path / "full", **common)).status == "done"
    first = _train_until(tiny_config_dict(precomputed_dataset, tmp_path / "kill", **common), stop_at=4, sigterm_group=True)
    assert first.status == "cancelled" and first.step == 4
    assert read_events(tmp_path / "kill" / "events.jsonl")[-1]["reason"] == "SIGTERM"
    resumed = _train(tiny_config_dict(precomputed_dataset, tmp_path / "kill", **common))
    assert resumed.status == "done" and resumed.step == 6
    assert [e["step"] for e in read_events(tmp_path / "kill" / "events.jsonl") if e["event"] == "started"] == [0, 4]
    a = _tensors(tmp_path / "full" / "lora_weights.safetensors")
    b = _tensors(tmp_path / "kill" / "lora_weights.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after resume"


@pytest.mark.parametrize("kind", ["linear", "cosine", "cosine_with_restarts", "polynomial", "constant"])
def test_schedule_clock_rebases_continuously(kind: str) -> None:
    from ltx_train_lib.training.schedule import ScheduleClock, lr_factor

    clock = ScheduleClock(100)
    assert [clock.factor(kind, {}, s, 1e-3, 10) for s in range(101)] == [lr_factor(kind, {}, s, 100, 1e-3, 10) for s in range(101)]
    longer = clock.rebased(40, 250)
    assert longer.factor(kind, {}, 40, 1e-3) == pytest.approx(lr_factor(kind, {}, 40, 100, 1e-3))  # continuous
    assert longer.factor(kind, {}, 250, 1e-3) == pytest.approx(lr_factor(kind, {}, 100, 100, 1e-3))  # the end value
    shorter = ScheduleClock.from_state_dict(longer.state_dict(), 0).rebased(145, 150)  # saved, resumed, re-based again
    assert shorter.position(145) == pytest.approx(longer.position(145)) and shorter.position(150) == 100
    assert longer.rebased(40, 250) is longer


def test_changed_steps_rebase_the_schedule_and_fewer_steps_refuse(tmp_path: Path, precomputed_dataset: Path, tiny_model_dir: Path) -> None:
    out = tmp_path / "o"
    cfg = tiny_config_dict(precomputed_dataset, out, optimization__steps=4, optimization__scheduler_type="linear", checkpoints__interval=None)
    assert _train_until(cfg, stop_at=2).step == 2
    longer = dict(cfg, optimization=dict(cfg["optimization"], steps=6))
    assert _train_until(longer, stop_at=4).step == 4  # re-based at 2 ...
    assert _train(longer).status == "done"  # ... and the saved clock keeps the re-based schedule
    lrs = {e["step"]: e["lr"] for e in read_events(out / "events.jsonl") if e["event"] == "step"}
    # linear 1.0 -> 0.1 over 4 steps; from step 2 on the remaining half of the schedule is spread over 4 steps
    position = {1: 1, 2: 2, 3: 2.5, 4: 3, 5: 3.5, 6: 4}
    assert lrs == {s: pytest.approx(1e-3 * (1 - 0.9 * p / 4)) for s, p in position.items()}
    assert lrs[6] == pytest.approx(1e-4)  # the schedule's end value at the new total
    with pytest.raises(TrainingError, match=r"already at step 6, past optimization.steps 5.*optimization.steps to 6 or more.*new output_dir"):
        _train(dict(cfg, optimization=dict(cfg["optimization"], steps=5)))
    assert _train(longer).status == "done"  # the same total again: already done, nothing trained
    assert len([e for e in read_events(out / "events.jsonl") if e["event"] == "step"]) == 6


def test_changed_dataset_refuses_to_resume(tmp_path: Path, tiny_model_dir: Path) -> None:
    from ltx_train_lib.training.state import dataset_signature

    root = make_precomputed(tmp_path / "ds", [(2, 2, 2)] * 4)
    latents = root / ".precomputed" / "latents"
    before = dataset_signature(PrecomputedDataset(root))
    for p in latents.glob("*.pt"):
        os.utime(p, ns=(1, 1))  # a copied dataset: other times, same content
    assert dataset_signature(PrecomputedDataset(root)) == before
    cfg = tiny_config_dict(root, tmp_path / "o", optimization__steps=2)
    _train(cfg)
    make_precomputed(tmp_path / "more", [(2, 2, 2)] * 6, seed=1)  # clip_004, clip_005: added; clip_000: re-encoded
    for name in ("clip_000.mp4.pt", "clip_004.mp4.pt", "clip_005.mp4.pt"):
        for sub in ("latents", "conditions"):
            (root / ".precomputed" / sub / name).write_bytes((tmp_path / "more" / ".precomputed" / sub / name).read_bytes())
    for sub in ("latents", "conditions"):
        (root / ".precomputed" / sub / "clip_003.mp4.pt").unlink()
    with pytest.raises(TrainingError, match=r"another version of the dataset.*2 sample\(s\) added, 1 removed, 1 changed \(e\.g\. "
                       r"\+clip_004.mp4.pt, \+clip_005.mp4.pt, -clip_003.mp4.pt, ~clip_000.mp4.pt\).*new output_dir or set checkpoints.resume: false"):
        _train(dict(cfg, optimization=dict(cfg["optimization"], steps=4)))


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path: Path, precomputed_dataset: Path, tiny_model_dir: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tiny_config_dict(precomputed_dataset, tmp_path / "o", optimization__steps=2, checkpoints__interval=1)
    _train(cfg)
    # from now on every batch reads as NaN, then the same run continues for more steps (in memory: changed files
    # would be a changed dataset, which refuses to resume)

    def nan_collate(items):
        batch = collate(items)
        batch["latents"] = torch.full_like(batch["latents"], float("nan"))
        return batch

    monkeypatch.setattr("ltx_train_lib.training.batches.collate", nan_collate)
    before = _tensors(tmp_path / "o" / "lora_weights.safetensors")
    with pytest.raises(TrainingError, match=r"the loss became (nan|inf) at step 3.*training_state_step_00002"):
        _train(dict(cfg, optimization=dict(cfg["optimization"], steps=6)))
    after = _tensors(tmp_path / "o" / "lora_weights.safetensors")
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert ckpt.latest_state_checkpoint(tmp_path / "o").step == 2
    assert read_events(tmp_path / "o" / "events.jsonl")[-1]["event"] == "error"


@pytest.mark.parametrize(
    ("setup", "error", "pattern"),
    [
        ("missing", DatasetError, "does not exist; run preprocess_dataset.py"),
        ("empty", DatasetError, "is empty; preprocess some videos first"),
        ("no_conditions", DatasetError, "have no matching conditions/ file: clip_001.mp4.pt"),
        ("bad_checkpoint", TrainingError, "model.load_checkpoint: '.*nope.safetensors' does not exist"),
        ("too_few", DatasetError, "lower optimization.batch_size"),
    ],
)
def test_bad_input_gives_message_and_writes_nothing(tmp_path: Path, setup: str, error: type, pattern: str, tiny_model_dir: Path) -> None:
    root = tmp_path / "ds"
    overrides: dict = {}
    if setup == "empty":
        (root / ".precomputed" / "latents").mkdir(parents=True)
    elif setup == "no_conditions":
        make_precomputed(root, [(2, 2, 2)] * 3)
        (root / ".precomputed" / "conditions" / "clip_001.mp4.pt").unlink()
    elif setup == "bad_checkpoint":
        make_precomputed(root, [(2, 2, 2)] * 2)
        overrides["model__load_checkpoint"] = str(tmp_path / "nope.safetensors")
    elif setup == "too_few":
        make_precomputed(root, [(2, 2, 2), (1, 2, 3)])
    with pytest.raises(error, match=pattern):
        _train(tiny_config_dict(root, tmp_path / "out", **overrides))
    assert not (tmp_path / "out").exists()


def test_bucket_rules() -> None:
    from ltx_train_lib.buckets import nearest_bucket, parse_buckets

    assert [str(b) for b in parse_buckets("768x448x89;512x512x49")] == ["768x448x89", "512x512x49"]
    with pytest.raises(ConfigError, match=r"'768x448x88'.*8k\+1.*768x448x81"):
        parse_buckets("768x448x88")
    with pytest.raises(ConfigError, match=r"'700x448x89'.*multiples of 32.*672x448x89"):
        parse_buckets("700x448x89")
    with pytest.raises(ConfigError, match="expected WIDTHxHEIGHTxFRAMES"):
        parse_buckets("768x448")
    buckets = parse_buckets("768x448x89;512x512x49;1024x576x1")
    assert str(nearest_bucket(buckets, 1920, 1080, 200)) == "768x448x89"
    assert str(nearest_bucket(buckets, 500, 500, 60)) == "512x512x49"
    assert nearest_bucket(parse_buckets("512x512x49"), 500, 500, 30) is None


def test_load_checkpoint_continues_from_weights(tmp_path: Path, precomputed_dataset: Path, tiny_model_dir: Path) -> None:
    _train(tiny_config_dict(precomputed_dataset, tmp_path / "a", optimization__steps=2))
    start = _tensors(tmp_path / "a" / "lora_weights_comfy.safetensors")
    cfg = tiny_config_dict(precomputed_dataset, tmp_path / "b", optimization__steps=1, optimization__learning_rate=1e-12,
                           model__load_checkpoint=str(tmp_path / "a" / "checkpoints"))
    _train(cfg)
    end = _tensors(tmp_path / "b" / "lora_weights_comfy.safetensors")
    for k in start:
        assert torch.allclose(start[k], end[k], atol=1e-6), k


def test_tensorboard_logs_loss_and_lr(tmp_path: Path, precomputed_dataset: Path, tiny_model_dir: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _train(tiny_config_dict(precomputed_dataset, tmp_path / "o", optimization__steps=3, tensorboard={"enabled": True}))
    acc = EventAccumulator(str(tmp_path / "o" / "tensorboard"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("train/loss")] == [1, 2, 3]
    assert len(acc.Scalars("train/learning_rate")) == 3


def test_wandb_without_package_is_a_clear_error(tmp_path: Path, precomputed_dataset: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)  # behaves as "not installed"
    with pytest.raises(ConfigError, match="wandb.enabled is true but the wandb package is not installed"):
        _train(tiny_config_dict(precomputed_dataset, tmp_path / "o", wandb={"enabled": True}))
    assert not (tmp_path / "o").exists()


def test_int8_quantized_base_trains_a_lora(tmp_path: Path, precomputed_dataset: Path, tiny_model_dir: Path) -> None:
    pytest.importorskip("optimum.quanto")  # installed by requirements-dev.txt; optional for users
    trainer = Trainer(config_from_dict(tiny_config_dict(precomputed_dataset, tmp_path / "o", optimization__steps=2,
                                                        acceleration__quantization="int8-quanto")))
    result = trainer.train()
    block = trainer.unwrapped.transformer_blocks[0]
    assert type(block.attn1.to_q.base_layer).__name__ == "QLinear"
    assert type(trainer.unwrapped.proj_in).__name__ == "Linear"  # excluded, as in the reference
    assert result.status == "done" and (tmp_path / "o" / "lora_weights_comfy.safetensors").is_file()


def test_stop_requested_while_loading_ends_cancelled_without_training(tmp_path: Path, precomputed_dataset: Path, tiny_model_dir: Path) -> None:
    trainer = Trainer(config_from_dict(tiny_config_dict(precomputed_dataset, tmp_path / "o")))
    original = trainer._check_inputs

    def check_then_signal():
        result = original()
        os.kill(os.getpid(), signal.SIGTERM)  # arrives while models load, before the first step
        return result

    trainer._check_inputs = check_then_signal
    result = trainer.train()
    assert result.status == "cancelled" and result.step == 0
    events = read_events(tmp_path / "o" / "events.jsonl")
    assert [e["event"] for e in events] == ["started", "cancelled"] and events[-1]["reason"] == "SIGTERM"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored for the host process
