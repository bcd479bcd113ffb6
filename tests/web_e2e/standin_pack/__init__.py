"""A stand-in ComfyUI pack for tests/test_web_e2e.py: the real monitor (routes + web/) and a fake TrainLoRA node.

The fake node keeps the TrainLoRA contract the monitor relies on, without torch or a model: it creates
``<output>/ltx_trainer/jobs/<job_id>/`` with job.json, starts a process in its own session to stand for the
``accelerate launch`` child (its pgid goes into job.json, so Cancel really sends SIGTERM), writes trainer events with
the library's EventWriter, forwards each as ``ltx_trainer.event`` and announces new jobs with ``ltx_trainer.jobs``.
Loaded only by the e2e test, from a temporary ComfyUI base directory; never part of the shipped pack.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import folder_paths  # noqa: E402  (ComfyUI)
from server import PromptServer  # noqa: E402  (ComfyUI)

from ltx_train_lib.events import EventWriter  # noqa: E402
from ltx_train_lib.fileio import write_text_atomic  # noqa: E402

# The real routes module, loaded by path: this pack is not the repo's package, and ComfyUI has its own `nodes`.
_spec = importlib.util.spec_from_file_location("ltx_trainer_e2e_routes", REPO / "nodes" / "routes.py")
routes = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(routes)
assert routes.REGISTERED, "routes did not register with ComfyUI's PromptServer"

WEB_DIRECTORY = str(REPO / "web")


def _write_sample(path: Path, frames: int = 8) -> None:
    """A real (tiny) H.264 mp4 so the browser can play it; falls back to a stub if PyAV cannot encode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import av
        import numpy as np

        with av.open(str(path), "w") as container:
            stream = container.add_stream("libx264", rate=8)
            stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
            for i in range(frames):
                img = np.full((64, 64, 3), (i * 30) % 255, dtype=np.uint8)
                for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    except Exception:  # noqa: BLE001 - the monitor test only needs the file to exist
        path.write_bytes(b"\x00\x00\x00\x18ftypmp42")


class StandInTrainLoRA:
    CATEGORY = "LTX Trainer/testing"
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("job_id",)
    FUNCTION = "run"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "steps": ("INT", {"default": 12, "min": 1, "max": 10000}),
                "step_seconds": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 10.0, "step": 0.1}),
                "sample_every": ("INT", {"default": 4, "min": 1, "max": 10000}),
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    @classmethod
    def IS_CHANGED(cls, **kwargs):
        return float("nan")

    def run(self, steps: int, step_seconds: float, sample_every: int, unique_id: str | None = None):
        server = PromptServer.instance
        job_id = (
            f"standin-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid() % 1000:03d}{int(time.time() * 1000) % 1000:03d}"
        )
        folder = Path(folder_paths.get_output_directory()) / "ltx_trainer" / "jobs" / job_id
        folder.mkdir(parents=True)
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"], start_new_session=True)
        meta = {
            "id": job_id,
            "name": f"stand-in LoRA ({steps} steps)",
            "created": time.time(),
            "status": "running",
            "pgid": child.pid,
            "output_dir": str(folder),
            "config": "training_config.yaml",
            "log": "train.log",
            "node_id": unique_id,
        }
        write_text_atomic(folder / "job.json", json.dumps(meta))
        (folder / "training_config.yaml").write_text(f"steps: {steps}\n")
        (folder / "train.log").write_text("stand-in trainer log\n")
        writer = EventWriter(folder / "events.jsonl")

        def emit(kind: str, **fields):
            record = writer.emit(kind, **fields)
            server.send_sync("ltx_trainer.event", {"job_id": job_id, "node_id": unique_id, "event": record}, None)

        def finish(status: str):
            meta["status"] = status
            write_text_atomic(folder / "job.json", json.dumps(meta))
            server.send_sync("ltx_trainer.jobs", {}, None)

        server.send_sync("ltx_trainer.jobs", {}, None)
        emit(
            "started",
            step=0,
            total=steps,
            resumed_from=None,
            output_dir=str(folder),
            num_processes=1,
            model="stand-in",
            training_mode="lora",
            pid=child.pid,
        )
        try:
            for step in range(1, steps + 1):
                time.sleep(step_seconds)
                if child.poll() is not None:  # the Cancel route SIGTERMed our "trainer"
                    emit("cancelled", step=step - 1, checkpoint=str(folder / "checkpoints" / f"step_{step - 1:06d}"))
                    finish("cancelled")
                    return (job_id,)
                loss = 0.6 * math.exp(-step / 6) + 0.1 + 0.03 * math.sin(step * 1.7)
                emit(
                    "step",
                    step=step,
                    total=steps,
                    loss=loss,
                    lr=1e-4 * min(1.0, step / 3),
                    sec_per_step=step_seconds,
                    eta_s=(steps - step) * step_seconds,
                    memory_mb=1500.0 + step,
                )
                if step % sample_every == 0:
                    sample = folder / "validation_samples" / f"step_{step:06d}_1.mp4"
                    _write_sample(sample)
                    emit("sample", step=step, paths=[str(sample)], prompts=[f"a red cube, step {step}"])
            lora = folder / "lora_weights_comfy.safetensors"
            lora.write_bytes(b"{}")
            emit("done", step=steps, total=steps, seconds=steps * step_seconds, outputs={"lora_comfy": str(lora)})
            finish("done")
            return (job_id,)
        finally:
            if child.poll() is None:
                child.kill()
            child.wait()


NODE_CLASS_MAPPINGS = {"LTXTrainer_TrainLoRA": StandInTrainLoRA}
NODE_DISPLAY_NAME_MAPPINGS = {"LTXTrainer_TrainLoRA": "Train LoRA (LTX) — monitor test stand-in"}
