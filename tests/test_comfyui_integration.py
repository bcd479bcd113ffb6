"""The pack inside a real ComfyUI server (skipped unless COMFYUI_PATH points at a ComfyUI checkout).

    COMFYUI_PATH=/tmp/comfyui COMFYUI_PYTHON=/tmp/comfyui-venv/bin/python .venv/bin/pytest -q tests/test_comfyui_integration.py

ComfyUI's Python is COMFYUI_PYTHON, else a virtual environment inside the checkout (``.venv/`` or ``venv/``); the
tests fail naming both when neither exists (never a guess next to the checkout, which may belong to another ComfyUI
version). It needs the pack's requirements (the harness: ``EXTRA_REQS=requirements.txt bash setup.sh``).

The server runs on CPU with ``--base-directory`` in pytest's tmp dir: its models (LoRAs saved by ConvertComfy
included), custom_nodes, input, output, temp and user folders are all temporary, so nothing is written into the
checkout's ``models/``; the pack is symlinked into that temporary custom_nodes folder.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

COMFYUI = os.environ.get("COMFYUI_PATH")
pytestmark = [
    pytest.mark.comfyui,
    pytest.mark.skipif(not COMFYUI, reason="set COMFYUI_PATH to a ComfyUI checkout to run the integration tests"),
]

ROOT = Path(__file__).resolve().parents[1]
OUR_NODES = [
    "LTXTrainer_LoadVideos", "LTXTrainer_SplitScenes", "LTXTrainer_QwenCaption", "LTXTrainer_PrecomputeLatents_v2",
    "LTXTrainer_PrecomputeOptions", "LTXTrainer_TrainLoRA_v2", "LTXTrainer_TrainingOptions", "LTXTrainer_ConvertComfy",
    "LTXTrainer_PushToHub", "LTXTrainer_CompareCheckpoints", "LTXTrainer_PrecomputeLatents", "LTXTrainer_TrainLoRA",
]
FRONTEND_ONLY = {"Note", "MarkdownNote", "Reroute", "PrimitiveNode"}


def _python() -> str:
    """COMFYUI_PYTHON, or the python of a venv inside the ComfyUI checkout."""
    explicit = os.environ.get("COMFYUI_PYTHON")
    if explicit:
        if not Path(explicit).is_file():
            pytest.fail(f"COMFYUI_PYTHON={explicit}: no such file; point it at the python of ComfyUI's environment")
        return explicit
    checkout = Path(COMFYUI or ".")
    for venv in (checkout / ".venv", checkout / "venv"):
        if (venv / "bin" / "python").is_file():
            return str(venv / "bin" / "python")
    pytest.fail(f"no Python for ComfyUI: set COMFYUI_PYTHON, or create a venv in {checkout / '.venv'}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Comfy:
    def __init__(self, base: str, folders: dict[str, Path], proc: subprocess.Popen) -> None:
        self.base, self.folders, self.proc = base, folders, proc

    def get(self, path: str, timeout: float = 60):
        with urllib.request.urlopen(self.base + path, timeout=timeout) as r:
            return json.loads(r.read() or b"null")

    def post(self, path: str, body: dict, timeout: float = 60):
        req = urllib.request.Request(self.base + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def queue(self, prompt: dict) -> str:
        code, body = self.post("/prompt", {"prompt": prompt, "client_id": uuid.uuid4().hex})
        assert code == 200, body
        return body["prompt_id"]

    def wait(self, prompt_id: str, timeout: float = 900) -> dict:
        deadline = time.time() + timeout
        while time.time() < deadline:
            hist = self.get(f"/history/{prompt_id}")
            if prompt_id in hist and hist[prompt_id].get("status", {}).get("completed") is not None:
                status = hist[prompt_id]["status"]
                if status.get("completed") or status.get("status_str") == "error":
                    return hist[prompt_id]
            time.sleep(0.5)
        raise AssertionError(f"prompt {prompt_id} did not finish in {timeout} s")


def _files(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()} if folder.is_dir() else set()


@pytest.fixture(scope="module")
def comfy(tmp_path_factory):
    python = _python()
    base = tmp_path_factory.mktemp("comfyui")
    folders = {k: base / k for k in ("input", "output", "temp", "custom_nodes", "user")}
    folders.update(checkpoints=base / "models" / "checkpoints", loras=base / "models" / "loras", vae=base / "models" / "vae")
    for f in folders.values():
        f.mkdir(parents=True)
    (folders["custom_nodes"] / "ComfyUI-LTX-Trainer").symlink_to(ROOT, target_is_directory=True)
    real_loras = Path(COMFYUI) / "models" / "loras"
    before = _files(real_loras)
    port = _free_port()
    log = open(base / "comfyui.log", "wb")
    proc = subprocess.Popen(
        [python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port), "--disable-auto-launch",
         "--base-directory", str(base), "--database-url", f"sqlite:///{base / 'comfyui.db'}"],
        cwd=COMFYUI, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "LTX_TRAIN_CACHE": os.environ.get("LTX_TRAIN_CACHE", str(ROOT / ".venv" / "ltx_cache"))},
    )
    server = Comfy(f"http://127.0.0.1:{port}", folders, proc)
    deadline = time.time() + 300
    while True:
        try:
            server.get("/object_info", timeout=5)
            break
        except Exception:  # noqa: BLE001 - not up yet
            if proc.poll() is not None or time.time() > deadline:
                raise AssertionError("ComfyUI did not start:\n" + (base / "comfyui.log").read_text()[-4000:]) from None
            time.sleep(1)
    _sample_data(folders["input"])
    _tiny_comfy_checkpoints(folders["checkpoints"], folders["vae"])
    yield server
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    log.close()
    assert _files(real_loras) == before, "the tests wrote into the checkout's models/loras"


def _sample_data(input_dir: Path) -> None:
    """Raw sample videos (workflow a) and a captioned dataset (workflows b, c) in the input folder."""
    sys.path.insert(0, str(ROOT))
    from ltx_train_lib.captions_io import CaptionEntry, write_captions
    from ltx_train_lib.synthetic import make_sample_clips

    make_sample_clips(input_dir / "ltx_trainer_sample")
    dataset = input_dir / "ltx_trainer_sample_dataset"
    clips = make_sample_clips(dataset / "clips")
    write_captions(dataset / "captions.json", [CaptionEntry(f"a moving pattern, clip {i}", p) for i, p in enumerate(clips)])


def _tiny_comfy_checkpoints(folder: Path, vae_folder: Path) -> None:
    """The `tiny` model as ComfyUI single-file checkpoints (ComfyUI's LTXV classes with the tiny dims, passed as the
    file's "config" metadata): the transformer alone (8 latent channels), a 1-block copy on which half of a LoRA's
    keys patch nothing, and the transformer with the tiny VAE in ComfyUI's 128-channel latent space (channels 0..7 are
    the tiny model's, ltx_train_lib/models/ltxv/tiny_comfy.py), also as a lone VAE file for VAELoader."""
    from ltx_train_lib.models.ltxv.tiny_comfy import write_tiny_comfy_checkpoint, write_tiny_comfy_vae

    write_tiny_comfy_checkpoint(folder / "ltx_tiny_comfy.safetensors")
    write_tiny_comfy_checkpoint(folder / "ltx_tiny_1block.safetensors", num_layers=1)
    write_tiny_comfy_checkpoint(folder / "ltx_tiny_comfy_vae.safetensors", with_vae=True)
    write_tiny_comfy_vae(vae_folder / "ltx_tiny_vae.safetensors")


def to_api(workflow: dict, object_info: dict, overrides: dict[str, dict] | None = None) -> dict:
    """UI format -> API prompt for plain graphs (what the frontend's graphToPrompt does for these workflows)."""
    nodes = {n["id"]: n for n in workflow["nodes"]}
    links = {ln[0]: ln for ln in workflow["links"]}
    prompt = {}
    for n in workflow["nodes"]:
        if n["type"] in FRONTEND_ONLY or n.get("mode", 0) != 0:
            continue
        info = object_info[n["type"]]
        order = [*info["input_order"].get("required", []), *info["input_order"].get("optional", [])]
        specs = {**info["input"].get("required", {}), **info["input"].get("optional", {})}
        widgets = [k for k in order if isinstance(specs[k][0], list) or specs[k][0] in ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")]
        inputs = dict(zip(widgets, n["widgets_values"], strict=False))
        for inp in n.get("inputs", []):
            if inp.get("link") is not None:
                _, src, slot, *_ = links[inp["link"]]
                if nodes[src].get("mode", 0) == 0:
                    inputs[inp["name"]] = [str(src), slot]
        inputs.update((overrides or {}).get(n["type"], {}))
        prompt[str(n["id"])] = {"class_type": n["type"], "inputs": inputs}
    return prompt


def _workflow(name: str) -> dict:
    return json.loads((ROOT / "workflows" / f"{name}.json").read_text())


def test_nodes_are_listed_in_object_info(comfy):
    info = comfy.get("/object_info")
    for name in OUR_NODES:
        assert name in info, name
        assert info[name]["category"].startswith("LTX Trainer/")
        for spec in {**info[name]["input"]["required"], **info[name]["input"].get("optional", {})}.values():
            assert spec[1].get("tooltip")
    for train in ("LTXTrainer_TrainLoRA_v2", "LTXTrainer_TrainLoRA"):
        assert info[train]["output"] == ["LTXT_LORA", "LOSS_MAP"]
    # the first release's all-settings nodes: still there for saved workflows, flagged deprecated (hidden in search)
    assert info["LTXTrainer_TrainLoRA"]["deprecated"] is True and info["LTXTrainer_PrecomputeLatents"]["deprecated"] is True
    assert not info["LTXTrainer_TrainLoRA_v2"].get("deprecated")
    assert info["LTXTrainer_TrainLoRA_v2"]["input"]["optional"]["options"][0] == info["LTXTrainer_TrainingOptions"]["output"][0]
    if "search_aliases" in info["LoraLoader"]:  # a ComfyUI that sends SEARCH_ALIASES (newer than 0.3.64)
        from nodes import NODE_CLASS_MAPPINGS

        for name in OUR_NODES:
            assert info[name]["search_aliases"] == NODE_CLASS_MAPPINGS[name].SEARCH_ALIASES, name
    jobs = comfy.get("/ltx_trainer/jobs")  # the monitor's routes came in with the pack
    assert "jobs" in jobs


@pytest.mark.parametrize("name", ["LTX Trainer, full pipeline (tiny model, CPU)", "LTX Trainer, train from a dataset (tiny model, CPU)",
                                  "LTX Trainer, audio-video LoRA (tiny LTX-2, CPU)"])
def test_bundled_workflow_runs_end_to_end(comfy, name):
    info = comfy.get("/object_info")
    lora_name = f"it_{uuid.uuid4().hex[:8]}"
    prompt = to_api(_workflow(name), info, {"LTXTrainer_ConvertComfy": {"lora_name": lora_name}})
    result = comfy.wait(comfy.queue(prompt))
    assert result["status"]["status_str"] == "success", json.dumps(result["status"])[-3000:]
    outputs = result["outputs"]
    train_id = next(k for k, v in prompt.items() if v["class_type"] == "LTXTrainer_TrainLoRA_v2")
    assert "text" in outputs[train_id]
    saved = comfy.folders["loras"] / f"{lora_name}.safetensors"
    assert saved.is_file()
    if "LTX-2" in name:  # the sample clips' sound was encoded and trained: the LoRA adapts the audio stream too
        from safetensors import safe_open

        with safe_open(str(saved), "pt") as fh:
            keys = list(fh.keys())
            assert fh.metadata()["modalities"] == "audio_video"
        assert any(".audio_attn1." in k for k in keys) and any(".audio_to_video_attn." in k for k in keys)
    saved.unlink()


def _latency(comfy, path: str, n: int = 40) -> tuple[float, float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        comfy.get(path)
        times.append(time.perf_counter() - t0)
        time.sleep(0.05)
    times.sort()
    return times[len(times) // 2], times[min(len(times) - 1, int(len(times) * 0.99))]


def _events(job_dir: Path) -> list[dict]:
    path = job_dir / "events.jsonl"
    if not path.is_file():
        return []
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.endswith("}")]


def _wait_for(what: str, check, timeout: float = 600):
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _cancel_and_check(comfy, pid: str, job_dir: Path) -> int:
    """Cancel the running prompt as the editor's button does; every process of the job ends. Returns the stop step."""
    code, _ = comfy.post("/interrupt", {"prompt_id": pid})
    assert code == 200
    result = comfy.wait(pid, timeout=300)
    assert result["status"]["status_str"] == "error"
    assert any(m[0] == "execution_interrupted" for m in result["status"]["messages"])
    meta = json.loads((job_dir / "job.json").read_text())
    assert meta["status"] == "cancelled"
    with pytest.raises(ProcessLookupError):
        os.killpg(meta["pgid"], 0)
    return next(e for e in reversed(_events(job_dir)) if e["event"] == "cancelled")["step"]


def test_cancel_ends_every_child_and_requeue_resumes(comfy):
    """Deterministic: the run has far more steps than it can make while the test runs, and Cancel comes as soon as
    the first step event is written (not after a delay). The re-queue is cancelled the same way once it has resumed,
    so nothing depends on how fast this machine trains."""
    info = comfy.get("/object_info")
    wf = _workflow("LTX Trainer, train from a dataset (tiny model, CPU)")
    overrides = {"LTXTrainer_TrainLoRA_v2": {"steps": 1_000_000, "validation_interval": 0},
                 "LTXTrainer_TrainingOptions": {"checkpoint_interval": 0, "job_name": "cancel"},
                 "LTXTrainer_ConvertComfy": {"lora_name": f"it_{uuid.uuid4().hex[:8]}"}}
    prompt = to_api(wf, info, overrides)
    jobs_root = comfy.folders["output"] / "ltx_trainer" / "jobs"
    before = set(jobs_root.iterdir()) if jobs_root.is_dir() else set()
    pid = comfy.queue(prompt)

    def first_step():
        new = (set(jobs_root.iterdir()) if jobs_root.is_dir() else set()) - before
        for job_dir in new:
            if any(e["event"] == "step" for e in _events(job_dir)):
                return job_dir
        return None

    job_dir = _wait_for("the first training step", first_step)
    # Latency of the server the editor talks to, while the trainer keeps both CPU cores busy.
    median, p99 = _latency(comfy, "/system_stats")
    om, op99 = _latency(comfy, "/object_info", 20)
    print(f"\nwhile training: /system_stats median {median * 1000:.1f} ms p99 {p99 * 1000:.1f} ms; "
          f"/object_info median {om * 1000:.1f} ms p99 {op99 * 1000:.1f} ms")
    assert p99 < 0.1
    assert not any(e["event"] == "done" for e in _events(job_dir))
    stop = _cancel_and_check(comfy, pid, job_dir)
    assert stop >= 1

    # Re-queue the same prompt: it resumes in the same job folder from the cancel's checkpoint.
    pid = comfy.queue(prompt)

    def resumed_and_stepping():
        events = _events(job_dir)
        started = [i for i, e in enumerate(events) if e["event"] == "started"]
        if len(started) < 2:
            return None
        return any(e["event"] == "step" for e in events[started[-1]:]) and events[started[-1]]

    started = _wait_for("the resumed run's first step", resumed_and_stepping)
    assert started["step"] == stop and started["resumed_from"]
    assert len(set(jobs_root.iterdir()) - before) == 1  # the same job, not a new one
    assert _cancel_and_check(comfy, pid, job_dir) > stop
    assert not list(comfy.folders["loras"].glob("it_*.safetensors"))  # ConvertComfy never ran


def test_lora_applied_to_a_comfyui_model_patches_every_key(comfy):
    """ConvertComfy with a MODEL from CheckpointLoaderSimple: ComfyUI's own loader patches every key of the trained
    LoRA; on a model missing half the blocks the node fails and names the unpatched keys."""
    info = comfy.get("/object_info")
    prompt = to_api(_workflow("LTX Trainer, train from a dataset (tiny model, CPU)"), info, {"LTXTrainer_ConvertComfy": {"lora_name": f"it_{uuid.uuid4().hex[:8]}"}})
    convert_id = next(k for k, v in prompt.items() if v["class_type"] == "LTXTrainer_ConvertComfy")
    prompt["900"] = {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "ltx_tiny_comfy.safetensors"}}
    prompt[convert_id]["inputs"]["model"] = ["900", 0]
    result = comfy.wait(comfy.queue(prompt))
    assert result["status"]["status_str"] == "success", json.dumps(result["status"])[-3000:]
    text = result["outputs"][convert_id]["text"][0]
    assert "applied to the model: 16 modules patched" in text
    saved = comfy.folders["loras"] / prompt[convert_id]["inputs"]["lora_name"]
    prompt["900"]["inputs"]["ckpt_name"] = "ltx_tiny_1block.safetensors"
    result = comfy.wait(comfy.queue(prompt))
    assert result["status"]["status_str"] == "error"
    error = next(m[1] for m in result["status"]["messages"] if m[0] == "execution_error")
    assert "16 of 32 keys" in error["exception_message"] and "transformer_blocks.1.attn1.to_k.lora_A.weight" in error["exception_message"]
    Path(f"{saved}.safetensors").unlink(missing_ok=True)


def _saved_latent(comfy, prefix: str):
    from safetensors.torch import load_file

    (path,) = sorted((comfy.folders["output"]).glob(f"{prefix}_*.latent"))[-1:]
    return load_file(str(path))["latent_tensor"]


def test_compare_checkpoints_samples_one_latent_per_checkpoint(comfy):
    """Train the tiny dataset workflow (checkpoints every 10 of 40 steps, the last 2 kept), then CheckpointLoaderSimple
    -> Compare Checkpoints -> SaveLatent in ComfyUI itself: ComfyUI's LoRA patcher and KSampler code, one latent per
    entry (the base model, step 30, step 40 = final) in step order, each different. Queued again with only pick_step
    and save_as changed, nothing is sampled again and the picked checkpoint lands in models/loras; at strength 0
    every entry is the base model's sample. The tiny model has 8 latent channels, so the latent comes from a .latent
    file (LoadLatent): EmptyLTXVLatentVideo's 128 zero channels would be kept at 128 by KSampler's empty-latent
    fix-up; there is no tiny text encoder in ComfyUI's format, so positive is the run's cached caption embedding."""
    import torch
    from safetensors.torch import save_file

    info = comfy.get("/object_info")
    assert info["LTXTrainer_CompareCheckpoints"]["output"] == ["LATENT", "STRING", "STRING", "IMAGE"]
    assert info["LTXTrainer_CompareCheckpoints"]["input"]["required"]["sampler_name"][0] == info["KSampler"]["input"]["required"]["sampler_name"][0]
    probe = f"compare_{uuid.uuid4().hex[:8]}.latent"
    save_file({"latent_tensor": torch.randn(1, 8, 3, 2, 3, generator=torch.Generator().manual_seed(0)),
               "latent_format_version_0": torch.tensor([])}, str(comfy.folders["input"] / probe))
    prompt = to_api(_workflow("LTX Trainer, train from a dataset (tiny model, CPU)"), info,
                    {"LTXTrainer_ConvertComfy": {"lora_name": f"it_{uuid.uuid4().hex[:8]}"}})
    train_id = next(k for k, v in prompt.items() if v["class_type"] == "LTXTrainer_TrainLoRA_v2")
    prefix = f"compare_{uuid.uuid4().hex[:8]}"
    prompt["900"] = {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "ltx_tiny_comfy.safetensors"}}
    prompt["901"] = {"class_type": "LoadLatent", "inputs": {"latent": probe}}
    prompt["902"] = {"class_type": "LTXTrainer_CompareCheckpoints", "inputs": {
        "model": ["900", 0], "lora": [train_id, 0], "sampling_seed": 3, "steps": 3, "cfg": 1.0, "sampler_name": "euler",
        "scheduler": "simple", "denoise": 1.0, "latent_image": ["901", 0], "strength": 1.0, "include_base_model": True,
        "pick_step": 0, "save_as": "", "overwrite": False}}
    prompt["903"] = {"class_type": "SaveLatent", "inputs": {"samples": ["902", 0], "filename_prefix": f"{prefix}_a"}}
    prompt["904"] = {"class_type": "SaveImage", "inputs": {"images": ["902", 3], "filename_prefix": f"{prefix}_grid"}}
    result = comfy.wait(comfy.queue(prompt))
    assert result["status"]["status_str"] == "success", json.dumps(result["status"])[-3000:]
    # the labelled comparison, saved by ComfyUI's own SaveImage: one row of 3 tiles (base, step 30, step 40)
    from PIL import Image

    from nodes.comparison_grid import GAP, label_height

    grid_files = sorted(comfy.folders["output"].glob(f"{prefix}_grid_*.png"))  # one per frame
    assert grid_files
    with Image.open(grid_files[0]) as im:
        assert (im.width - 2 * GAP) % 3 == 0 and im.height > 0, im.size
    assert result["outputs"]["902"]["images"], "the node shows the grid as its preview"
    text = result["outputs"]["902"]["text"][0]
    rows = [ln for ln in text.splitlines() if ln.startswith("[")]
    assert [r.split(":")[0] for r in rows] == ["[0] base model (no LoRA)", "[1] step 30", "[2] step 40 (final)"], text
    assert rows[2].endswith("<- picked") and "cached caption embedding" in text
    latents = _saved_latent(comfy, f"{prefix}_a")
    assert latents.shape == (3, 8, 3, 2, 3) and torch.isfinite(latents).all()
    for i in range(3):
        for j in range(i + 1, 3):
            assert (latents[i] - latents[j]).abs().max() > 1e-4, (i, j)

    # only the pick changed: the samples are reused, and step 30's LoRA is copied into models/loras
    saved_name = f"it_{uuid.uuid4().hex[:8]}"
    prompt["902"]["inputs"].update(pick_step=30, save_as=saved_name)
    prompt["903"]["inputs"]["filename_prefix"] = f"{prefix}_b"
    result = comfy.wait(comfy.queue(prompt))
    assert result["status"]["status_str"] == "success", json.dumps(result["status"])[-3000:]
    text = result["outputs"]["902"]["text"][0]
    assert "reused the samples of the previous run for 3 of 3 entries" in text, text
    job_dir = Path(text.split("picked: step 30: ")[1].split(" (")[0]).parent.parent
    saved = comfy.folders["loras"] / f"{saved_name}.safetensors"
    assert saved.read_bytes() == (job_dir / "checkpoints" / "lora_weights_step_00030_comfy.safetensors").read_bytes()
    assert torch.equal(_saved_latent(comfy, f"{prefix}_b"), latents)
    saved.unlink()

    # strength 0: every LoRA leaves the model as it is, so each entry is the base model's sample
    prompt["902"]["inputs"].update(strength=0.0, pick_step=0, save_as="")
    prompt["903"]["inputs"]["filename_prefix"] = f"{prefix}_c"
    result = comfy.wait(comfy.queue(prompt))
    assert result["status"]["status_str"] == "success", json.dumps(result["status"])[-3000:]
    zero = _saved_latent(comfy, f"{prefix}_c")
    assert all(torch.allclose(z, latents[0], atol=1e-5) for z in zero)

    # With a VAE: the same run compared on the tiny checkpoint that holds the tiny VAE (ComfyUI's 128 latent
    # channels, the tiny model on channels 0..7) and decoded by ComfyUI's VAE into the labelled grid, one tile per
    # entry under its name, every frame: SaveImage writes one file per frame.
    probe128 = f"compare_{uuid.uuid4().hex[:8]}.latent"
    save_file({"latent_tensor": torch.randn(1, 128, 2, 2, 3, generator=torch.Generator().manual_seed(0)),
               "latent_format_version_0": torch.tensor([])}, str(comfy.folders["input"] / probe128))
    prompt["900"]["inputs"]["ckpt_name"] = "ltx_tiny_comfy_vae.safetensors"
    prompt["901"]["inputs"]["latent"] = probe128
    prompt["902"]["inputs"].update(strength=1.0, vae=["900", 2])
    prompt["903"]["inputs"]["filename_prefix"] = f"{prefix}_d"
    prompt["904"]["inputs"]["filename_prefix"] = f"{prefix}_vae_grid"
    result = comfy.wait(comfy.queue(prompt))
    assert result["status"]["status_str"] == "success", json.dumps(result["status"])[-3000:]
    assert "connect the model's VAE" not in result["outputs"]["902"]["text"][0]
    frames = sorted(comfy.folders["output"].glob(f"{prefix}_vae_grid_*.png"))
    assert len(frames) > 1  # a video: the decoded frames of every entry side by side
    import numpy as np

    with Image.open(frames[0]) as im:
        grid = np.asarray(im.convert("RGB"), dtype=np.float32) / 255
    tile = (grid.shape[1] - 2 * GAP) // 3
    strip = next(grid.shape[0] - h for h in range(1, grid.shape[0]) if label_height(h) + h == grid.shape[0])
    pictures = [grid[strip:, i * (tile + GAP):i * (tile + GAP) + tile] for i in range(3)]  # below the name strips
    assert all(p.std() > 0.01 for p in pictures)  # decoded pixels, not blank name cards
    assert (np.abs(pictures[0] - pictures[1]).max() > 0.02), "the base model and step 30 look alike"


def test_tiny_vae_decodes_in_comfyui_like_diffusers(comfy):
    """LoadLatent -> VAEDecode -> SaveImage with the VAE of CheckpointLoaderSimple (ltx_tiny_comfy_vae, slot 2) and
    of VAELoader (ltx_tiny_vae): the frames are the tiny diffusers VAE's decode of the latent's first 8 channels
    (ComfyUI's LATENT is normalised: diffusers decodes it denormalised), up to SaveImage's 8-bit truncation. 0.3.6x's
    VAELoader drops the file's metadata, so it builds the real VAE's dims and fails on the tiny one (the node error
    names the size mismatch); CheckpointLoaderSimple passes the metadata on every version."""
    import numpy as np
    import torch
    from diffusers import AutoencoderKLLTXVideo
    from PIL import Image
    from safetensors.torch import save_file

    from ltx_train_lib.models.ltxv.geometry import denormalize_latents
    from ltx_train_lib.models.ltxv.tiny import tiny_model_dir

    info = comfy.get("/object_info")
    assert "ltx_tiny_comfy_vae.safetensors" in info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0]
    assert "ltx_tiny_vae.safetensors" in info["VAELoader"]["input"]["required"]["vae_name"][0]
    latent = torch.randn(1, 128, 2, 2, 3, generator=torch.Generator().manual_seed(1))
    probe = f"vae_{uuid.uuid4().hex[:8]}.latent"
    save_file({"latent_tensor": latent, "latent_format_version_0": torch.tensor([])}, str(comfy.folders["input"] / probe))
    tiny = AutoencoderKLLTXVideo.from_pretrained(str(tiny_model_dir() / "vae")).eval()
    with torch.no_grad():
        video = tiny.decode(denormalize_latents(latent[:, :8], tiny)).sample[0]  # [3, F, H, W] in -1..1
    expected = ((video + 1) / 2).clamp(0, 1).permute(1, 2, 3, 0).numpy() * 255  # [F, H, W, 3]
    loader_reads_config = "VAE(sd=sd, metadata=metadata)" in (Path(COMFYUI) / "nodes.py").read_text()
    for vae in (["900", 2], ["904", 0]):
        prefix = f"vae_{uuid.uuid4().hex[:8]}"
        prompt = {
            "900": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "ltx_tiny_comfy_vae.safetensors"}},
            "904": {"class_type": "VAELoader", "inputs": {"vae_name": "ltx_tiny_vae.safetensors"}},
            "901": {"class_type": "LoadLatent", "inputs": {"latent": probe}},
            "902": {"class_type": "VAEDecode", "inputs": {"samples": ["901", 0], "vae": vae}},
            "903": {"class_type": "SaveImage", "inputs": {"images": ["902", 0], "filename_prefix": prefix}},
        }
        result = comfy.wait(comfy.queue(prompt))
        if vae[0] == "904" and not loader_reads_config:
            assert result["status"]["status_str"] == "error" and "size mismatch" in json.dumps(result["status"])
            continue
        assert result["status"]["status_str"] == "success", json.dumps(result["status"])[-3000:]
        frames = sorted(comfy.folders["output"].glob(f"{prefix}_*.png"))
        assert len(frames) == expected.shape[0], frames
        got = np.stack([np.asarray(Image.open(f).convert("RGB"), dtype=np.float64) for f in frames])
        assert got.shape == expected.shape
        assert np.abs(got - expected).max() <= 1.0 + 1e-3, (vae, np.abs(got - expected).max())
        assert got.std() > 1  # not a flat image
