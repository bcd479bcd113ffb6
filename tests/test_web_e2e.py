"""End to end: the training monitor in the real ComfyUI editor (server + frontend in headless Chromium).

Skips unless COMFYUI_PATH points at a ComfyUI checkout (see ../shared/comfyui-harness/README.md: setup.sh and
setup_browser.sh). Each test starts its own ComfyUI on a free port with a private --base-directory, so the only
custom node pack loaded is the one under test.

- test_monitor_live_with_standin_trainer: the real routes and web/ with a stand-in LTXTrainer_TrainLoRA
  (tests/web_e2e/standin_pack) that writes trainer events without a model. Checks the job list and derived
  statuses, the live chart/stats/videos in the panel and on the node, a page reload mid-run, and Cancel (SIGTERM
  to the job's process group, then the `cancelled` event).
- test_monitor_on_the_real_pack: this repository loaded as the pack. Checks that the pack's __init__ registered the
  routes and the web directory, and that LTXTrainer_TrainLoRA carries the (unserialised) monitor widget. Its node
  check fails until the nodes engineer's LTXTrainer_TrainLoRA exists; a real training run is not started here.

Environment: COMFYUI_PATH (required), COMFYUI_PYTHON (default $COMFY_VENV/bin/python or /tmp/comfyui-venv/bin/python),
HARNESS_NODE_DIR (playwright-core, default /tmp/comfyui-harness-node), CHROMIUM (default /usr/bin/chromium),
LTX_E2E_ARTIFACTS (folder for screenshots; default: the test's tmp dir).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent / "web_e2e"
COMFYUI_PATH = os.environ.get("COMFYUI_PATH")
NODE_DIR = Path(os.environ.get("HARNESS_NODE_DIR", "/tmp/comfyui-harness-node"))
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")

pytestmark = [
    pytest.mark.comfyui,
    pytest.mark.slow,
    pytest.mark.skipif(not COMFYUI_PATH, reason="set COMFYUI_PATH to a ComfyUI checkout to run the browser test"),
]


def _comfy_python() -> Path:
    if os.environ.get("COMFYUI_PYTHON"):
        return Path(os.environ["COMFYUI_PYTHON"])
    return Path(os.environ.get("COMFY_VENV", "/tmp/comfyui-venv")) / "bin" / "python"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _post_json(url: str, body) -> None:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    urllib.request.urlopen(req, timeout=10).read()


def _requirements():
    if not (Path(COMFYUI_PATH) / "main.py").is_file():
        pytest.skip(f"COMFYUI_PATH={COMFYUI_PATH} has no main.py")
    py = _comfy_python()
    if not py.exists():
        pytest.skip(f"no ComfyUI python at {py} (set COMFYUI_PYTHON)")
    if not shutil.which("node") or not (NODE_DIR / "node_modules" / "playwright-core").is_dir():
        pytest.skip(f"node and playwright-core under {NODE_DIR} are needed (harness setup_browser.sh)")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}")
    return py


def _write_job(root: Path, job_id: str, meta: dict, events: list[dict]) -> None:
    folder = root / job_id
    folder.mkdir(parents=True)
    (folder / "job.json").write_text(
        json.dumps({"id": job_id, "output_dir": str(folder), "config": "c.yaml", "log": "train.log", **meta})
    )
    with open(folder / "events.jsonl", "w") as fh:
        for ev in events:
            fh.write(json.dumps(ev) + "\n")


class Comfy:
    """A ComfyUI server in its own session (so its whole process group can be stopped) and its own base dir."""

    def __init__(self, python: Path, base: Path, pack: Path, pack_name: str) -> None:
        self.base = base
        (base / "custom_nodes").mkdir(parents=True, exist_ok=True)
        (base / "custom_nodes" / pack_name).symlink_to(pack, target_is_directory=True)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = base / "comfyui.log"
        self.proc = subprocess.Popen(
            [
                str(python),
                "main.py",
                "--cpu",
                "--listen",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--disable-auto-launch",
                "--base-directory",
                str(base),
            ],
            cwd=COMFYUI_PATH,
            stdout=open(self.log_path, "w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.time() + 300
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI exited during start:\n{self.log()}")
            try:
                if _get(f"{self.url}/object_info", timeout=5)[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(1)
        else:
            self.stop()
            raise RuntimeError(f"ComfyUI did not answer within 300 s:\n{self.log()}")
        # no first-run tutorial / template browser over the canvas
        _post_json(f"{self.url}/api/settings/Comfy.TutorialCompleted", True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


def _drive(mode: str, comfy: Comfy, artifacts: Path) -> dict:
    env = {**os.environ, "HARNESS_NODE_DIR": str(NODE_DIR), "CHROMIUM": CHROMIUM}
    r = subprocess.run(
        ["node", str(HERE / "driver.cjs"), mode, comfy.url, str(artifacts)],
        capture_output=True,
        text=True,
        timeout=420,
        env=env,
    )
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    assert lines, f"driver printed no result (rc {r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return json.loads(lines[-1])


def _report(result: dict, comfy: Comfy) -> str:
    rows = [f"{'ok ' if ok else 'FAIL'} {name}: {detail}" for name, ok, detail in result["checks"]]
    return "\n".join(rows + [f"page problem: {p}" for p in result["problems"]] + ["--- server log ---", comfy.log()])


@pytest.fixture
def artifacts(tmp_path) -> Path:
    path = Path(os.environ.get("LTX_E2E_ARTIFACTS") or tmp_path / "artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_monitor_live_with_standin_trainer(tmp_path, artifacts):
    python = _requirements()
    base = tmp_path / "comfy"
    jobs = base / "output" / "ltx_trainer" / "jobs"
    t = time.time() - 3600
    _write_job(
        jobs,
        "oom-run",
        {"name": "oom run", "created": t, "status": "running", "pgid": None},
        [
            {"event": "started", "time": t + 1, "step": 0, "total": 100},
            {"event": "step", "time": t + 2, "step": 1, "total": 100, "loss": 0.9, "lr": 1e-4},
            {"event": "error", "time": t + 3, "step": 1, "message": "CUDA out of memory", "log": "train.log"},
        ],
    )
    dead = subprocess.Popen([sys.executable, "-c", "pass"], start_new_session=True)
    dead.wait()
    _write_job(
        jobs,
        "stale-run",
        {"name": "stale run", "created": t + 10, "status": "running", "pgid": dead.pid},
        [
            {"event": "started", "time": t + 11, "step": 0, "total": 100},
            {"event": "step", "time": t + 12, "step": 1, "total": 100, "loss": 0.8, "lr": 1e-4},
        ],
    )
    comfy = Comfy(python, base, HERE / "standin_pack", "ltx_monitor_standin")
    try:
        result = _drive("standin", comfy, artifacts)
    finally:
        comfy.stop()
    assert result["ok"], _report(result, comfy)


def test_monitor_on_the_real_pack(tmp_path, artifacts):
    python = _requirements()
    comfy = Comfy(python, tmp_path / "comfy", REPO, "ComfyUI-LTX-Trainer")
    try:
        assert not re.search(r"IMPORT FAILED\): \S*ComfyUI-LTX-Trainer", comfy.log()), comfy.log()
        result = _drive("real", comfy, artifacts)
    finally:
        comfy.stop()
    assert result["ok"], _report(result, comfy)
