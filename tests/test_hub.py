"""Hub push (ltx_train_lib.hub) and its CLI.

The Hugging Face Hub is faked: this machine has no network. A stdlib HTTP server on 127.0.0.1 answers the endpoints
huggingface_hub really calls for ``create_repo`` + ``create_commit`` (``POST /api/repos/create``,
``POST /api/validate-yaml``, ``POST /api/models/{repo}/preupload/{rev}``, ``POST /api/models/{repo}/commit/{rev}``,
``GET /api/whoami-v2``). Preupload answers ``uploadMode: "regular"`` for every file, so file contents arrive inline
(base64 in the NDJSON commit body) and the test can check every uploaded byte. Any other request is recorded as
unexpected and fails the test. The server lives only as long as one test (fixture teardown shuts it down).
"""

from __future__ import annotations

import base64
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

from ltx_train_lib import export, hub
from ltx_train_lib.cli.hub import main as hub_main
from ltx_train_lib.config import config_from_dict, dump_config

FAKE_TOKEN = "hf_FAKEtokenForTests_0123456789abcdefXYZ"
REPO_ID = "fake-user/my-lora"
PROMPTS = ["zxq cat surfing a wave", "zxq dog in the snow"]


class FakeHub:
    """State shared with the request handler: what arrived, and how to answer."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.unexpected: list[str] = []
        self.created: list[dict] = []
        self.commits: list[dict[str, bytes]] = []
        self.create_status = 200
        self.base_url = ""

    def handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 10  # a stuck client cannot hold a server thread forever

            def log_message(self, *args):  # keep pytest output clean
                pass

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _reply(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                fake.requests.append(("GET", self.path, dict(self.headers)))
                if self.path.startswith("/api/whoami-v2"):
                    return self._reply(200, {"name": "fake-user", "type": "user", "orgs": []})
                if self.path.startswith(f"/api/models/{REPO_ID}"):  # repo_info after a 403 on create: not there
                    return self._reply(404, {"error": "Repository not found"})
                fake.unexpected.append(f"GET {self.path}")
                return self._reply(404, {"error": "not faked"})

            def do_POST(self):
                body = self._body()
                fake.requests.append(("POST", self.path, dict(self.headers)))
                path = self.path.split("?")[0]
                if path == "/api/repos/create":
                    payload = json.loads(body)
                    fake.created.append(payload)
                    if fake.create_status != 200:
                        return self._reply(
                            fake.create_status,
                            {"error": "You don't have the rights to create a model under this namespace"},
                        )
                    repo = (
                        f"{payload['organization']}/{payload['name']}"
                        if payload.get("organization")
                        else payload["name"]
                    )
                    return self._reply(200, {"url": f"{fake.base_url}/{repo}", "name": repo})
                if path == "/api/validate-yaml":
                    return self._reply(200, {"errors": [], "warnings": []})
                if path.startswith(f"/api/models/{REPO_ID}/preupload/"):
                    files = json.loads(body)["files"]
                    return self._reply(
                        200,
                        {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]},
                    )
                if path.startswith(f"/api/models/{REPO_ID}/commit/"):
                    lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
                    assert lines[0]["key"] == "header"
                    files = {}
                    for line in lines[1:]:
                        assert line["key"] == "file", f"unexpected commit operation {line['key']}"
                        assert line["value"]["encoding"] == "base64"
                        files[line["value"]["path"]] = base64.b64decode(line["value"]["content"])
                    fake.commits.append(files)
                    return self._reply(
                        200,
                        {
                            "commitUrl": f"{fake.base_url}/{REPO_ID}/commit/{'a' * 40}",
                            "commitOid": "a" * 40,
                            "success": True,
                        },
                    )
                fake.unexpected.append(f"POST {self.path}")
                return self._reply(404, {"error": "not faked"})

        return Handler


@pytest.fixture
def fake_hub(monkeypatch, tmp_path):
    """A running fake Hub for one test; HF_TOKEN is a recognisable fake and no login cache is visible."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "no_login_cache" / "token"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    fake = FakeHub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), fake.handler())
    server.daemon_threads = True
    fake.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    assert not thread.is_alive()


def _write_mp4(path: Path, frames: int = 12, fps: int = 24, size: tuple[int, int] = (64, 48)) -> None:
    import av
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for i in range(frames):
            img = np.full((size[1], size[0], 3), (i * 20) % 255, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def _peft_sd() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    sd = {}
    for m in ("transformer_blocks.0.attn1.to_q", "transformer_blocks.0.attn1.to_out.0", "proj_in"):
        sd[f"{m}.lora_A.weight"] = torch.randn(4, 16, generator=g)
        sd[f"{m}.lora_B.weight"] = torch.randn(16, 4, generator=g)
    return sd


@pytest.fixture
def lora_output(tmp_path) -> Path:
    """A finished LoRA run: the weights pair, the config copy, two validation rounds with a prompts sidecar."""
    out = tmp_path / "run"
    export.save_lora_pair(
        _peft_sd(),
        out,
        rank=4,
        alpha=8,
        metadata={
            "base_model": "LTXV_2B_0.9.6_DEV",
            "trigger_word": "zxq",
            "training_steps": 10,
            "resolution_buckets": ["768x512x49", "512x512x49"],
        },
    )
    cfg = config_from_dict(
        {
            "model": {"model_source": "LTXV_2B_0.9.6_DEV", "training_mode": "lora"},
            "lora": {"rank": 4, "alpha": 8},
            "optimization": {"steps": 10, "learning_rate": 2e-4, "batch_size": 2},
            "data": {"preprocessed_data_root": "/data/cats"},
            "validation": {"prompts": PROMPTS, "video_dims": [64, 64, 9]},
            "output_dir": str(out),
        }
    )
    (out / "training_config.yaml").write_text(dump_config(cfg), encoding="utf-8")
    samples = out / "validation_samples"
    _write_mp4(samples / "step_000005_p0_v0.mp4")  # an older round: must not be uploaded
    _write_mp4(samples / "step_000010_p0_v0.mp4")
    _write_mp4(samples / "step_000010_p1_v0.mp4")
    (samples / "prompts.json").write_text(
        json.dumps(
            {
                "step_000005_p0_v0.mp4": PROMPTS[0],
                "step_000010_p0_v0.mp4": PROMPTS[0],
                "step_000010_p1_v0.mp4": PROMPTS[1],
            }
        ),
        encoding="utf-8",
    )
    return out


def _front_matter(readme: str) -> dict:
    assert readme.startswith("---\n")
    return yaml.safe_load(readme.split("---\n")[1])


def _assert_token_nowhere(folder: Path, uploaded: dict[str, bytes]) -> None:
    secret = FAKE_TOKEN.encode()
    for name, data in uploaded.items():
        assert secret not in data, f"token leaked into uploaded {name}"
    for path in folder.rglob("*"):
        if path.is_file():
            assert secret not in path.read_bytes(), f"token leaked into {path}"


# --------------------------------------------------------------------------------------------------------------------


def test_push_lora_uploads_everything_in_one_commit(fake_hub, lora_output):
    url = hub.push_to_hub(lora_output, REPO_ID, private=True, endpoint=fake_hub.base_url)
    assert url == f"{fake_hub.base_url}/{REPO_ID}"
    assert fake_hub.unexpected == []
    assert fake_hub.created == [
        {"name": "my-lora", "organization": "fake-user", "visibility": "private", "type": "model"}
    ]
    assert len(fake_hub.commits) == 1
    files = fake_hub.commits[0]
    assert sorted(files) == [
        "README.md",
        "lora_weights.safetensors",
        "lora_weights_comfy.safetensors",
        "sample_videos/step_000010_p0_v0.gif",
        "sample_videos/step_000010_p1_v0.gif",
        "training_config.yaml",
    ]
    for name in ("lora_weights.safetensors", "lora_weights_comfy.safetensors", "training_config.yaml"):
        assert files[name] == (lora_output / name).read_bytes(), name
    # every request carried the token, and only as the Authorization header
    assert all(
        h.get("Authorization", h.get("authorization")) == f"Bearer {FAKE_TOKEN}" for _, _, h in fake_hub.requests
    )

    # GIFs: real GIFs, looping, 24 fps source -> 15 fps with frames picked by time (12 frames -> 7)
    for name in ("sample_videos/step_000010_p0_v0.gif", "sample_videos/step_000010_p1_v0.gif"):
        gif = lora_output.parent / "check.gif"
        gif.write_bytes(files[name])
        with Image.open(gif) as im:
            assert im.format == "GIF" and im.n_frames == 7 and im.info.get("loop") == 0
            assert 60 <= im.info["duration"] <= 70 and im.size == (64, 48)
        gif.unlink()

    readme = files["README.md"].decode()
    front = _front_matter(readme)
    assert front["base_model"] == "Lightricks/LTX-Video" and front["library_name"] == "diffusers"
    assert {"ltx-video", "lora", "text-to-video", "image-to-video"} <= set(front["tags"])
    assert front["instance_prompt"] == "zxq"
    body = readme.split("---\n", 2)[2]
    for expected in (
        "LTX-Video 2B 0.9.6 (LTXV_2B_0.9.6_DEV)",
        "ltxv-2b-0.9.6-dev-04-25.safetensors",  # base model and version
        "| Steps | 10 |",
        "| Learning rate | 0.0002 |",
        "| LoRA rank | 4 |",
        "| LoRA alpha | 8 |",
        "| Batch size | 2 |",
        "768x512x49, 512x512x49",  # resolution buckets from the LoRA header
        "Validation videos from the last round (step 10)",
        "`zxq`",  # trigger word
        "ComfyUI/models/loras/",
        "LoraLoaderModelOnly",
        "lora_weights_comfy.safetensors",  # ComfyUI instructions
        'pipe.load_lora_weights("fake-user/my-lora", weight_name="lora_weights.safetensors"',  # diffusers
        "![sample 1](sample_videos/step_000010_p0_v0.gif)",
        "![sample 2](sample_videos/step_000010_p1_v0.gif)",
        PROMPTS[0],
        PROMPTS[1],
        "## Health check\n\nLoRA health: ok at step 10 (6 tensors, 3 modules, no NaN/Inf).",  # the scan's verdict
    ):
        assert expected in body, expected
    assert "step_000005" not in readme
    _assert_token_nowhere(lora_output, files)


def test_push_bare_repo_name_full_finetune_without_samples(fake_hub, tmp_path):
    out = tmp_path / "full"
    export.save_full_model(
        {"proj_in.weight": torch.ones(4, 4)}, out / "model_weights.safetensors", {"training_steps": 3}
    )
    url = hub.push_to_hub(out, "my-lora", endpoint=fake_hub.base_url, trigger_word="zxq")
    assert url == f"{fake_hub.base_url}/{REPO_ID}"  # the namespace came from whoami
    assert fake_hub.unexpected == [] and fake_hub.requests[0][1].startswith("/api/whoami-v2")
    files = fake_hub.commits[0]
    assert sorted(files) == ["README.md", "model_weights.safetensors"]
    assert files["model_weights.safetensors"] == (out / "model_weights.safetensors").read_bytes()
    readme = files["README.md"].decode()
    assert "lora" not in _front_matter(readme)["tags"] and "## Samples" not in readme
    assert "--to-comfy" in readme and "Load Diffusion Model" in readme and "`zxq`" in readme
    assert fake_hub.created[0]["visibility"] == "public"
    _assert_token_nowhere(out, files)


def test_a_token_inside_the_config_is_not_published(fake_hub, lora_output):
    config = lora_output / "training_config.yaml"
    config.write_text(config.read_text() + f"# pasted by mistake: {FAKE_TOKEN}\n", encoding="utf-8")
    before = config.read_bytes()
    hub.push_to_hub(lora_output, REPO_ID, endpoint=fake_hub.base_url)
    uploaded = fake_hub.commits[0]["training_config.yaml"].decode()
    assert FAKE_TOKEN not in uploaded and "pasted by mistake: ***" in uploaded
    assert config.read_bytes() == before  # the user's file is not touched


def test_no_token(fake_hub, lora_output, monkeypatch):
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(hub.HubError, match="no token found .*HF_TOKEN.*hf auth login"):
        hub.push_to_hub(lora_output, REPO_ID, endpoint=fake_hub.base_url)
    assert fake_hub.requests == []


@pytest.mark.parametrize("bad", ["", "a/b/c", "user/has space", "user/-bad--..name"])
def test_invalid_repo_id(fake_hub, lora_output, bad):
    with pytest.raises(hub.HubError, match="repo id .* is invalid.*user-or-org/name"):
        hub.push_to_hub(lora_output, bad, endpoint=fake_hub.base_url)
    assert fake_hub.requests == []


def test_http_error_names_url_status_and_fix(fake_hub, lora_output):
    fake_hub.create_status = 403
    with pytest.raises(hub.HubError) as info:
        hub.push_to_hub(lora_output, REPO_ID, endpoint=fake_hub.base_url)
    msg = str(info.value)
    assert "HTTP 403" in msg and f"{fake_hub.base_url}/api/repos/create" in msg
    assert "write" in msg and "fake-user" in msg and FAKE_TOKEN not in msg
    assert fake_hub.commits == []


def test_network_failure_says_which_endpoint(fake_hub, lora_output):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    with pytest.raises(hub.HubError, match=f"could not reach {dead}.*network"):
        hub.push_to_hub(lora_output, REPO_ID, endpoint=dead)


def test_missing_weights_and_folder(fake_hub, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(hub.HubError, match="no final weights to upload.*lora_weights.safetensors"):
        hub.push_to_hub(tmp_path / "empty", REPO_ID, endpoint=fake_hub.base_url)
    with pytest.raises(hub.HubError, match="output folder not found"):
        hub.push_to_hub(tmp_path / "absent", REPO_ID, endpoint=fake_hub.base_url)
    assert fake_hub.requests == []


def test_samples_without_prompts_sidecar_fall_back_to_config(lora_output):
    (lora_output / "validation_samples" / "prompts.json").unlink()
    samples = hub.last_validation_samples(lora_output, PROMPTS)
    assert [(s.path.name, s.prompt) for s in samples] == [
        ("step_000010_p0_v0.mp4", PROMPTS[0]),
        ("step_000010_p1_v0.mp4", PROMPTS[1]),
    ]
    (lora_output / "validation_samples" / "prompts.json").write_text("{not json", encoding="utf-8")
    assert [s.prompt for s in hub.last_validation_samples(lora_output)] == ["", ""]


def test_cli(fake_hub, lora_output, capsys):
    assert hub_main([str(lora_output), REPO_ID, "--trigger-word", "zxq", "--endpoint", fake_hub.base_url]) == 0
    assert f"Uploaded to {fake_hub.base_url}/{REPO_ID}" in capsys.readouterr().out
    assert hub_main([str(lora_output / "nope"), REPO_ID, "--endpoint", fake_hub.base_url]) == 1
    assert "output folder not found" in capsys.readouterr().err
    assert hub_main([]) == 2


def test_a_lora_holding_nan_is_refused_before_anything_is_sent(fake_hub, lora_output, capsys):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from ltx_train_lib.lora_health import LoraHealthError

    path = lora_output / "lora_weights_comfy.safetensors"
    with safe_open(str(path), "pt") as fh:
        meta = fh.metadata()
    sd = load_file(str(path))
    sd["diffusion_model.transformer_blocks.0.attn1.to_q.lora_B.weight"][2, 1] = float("nan")
    save_file(sd, str(path), metadata=meta)
    with pytest.raises(LoraHealthError) as info:
        hub.push_to_hub(lora_output, REPO_ID, endpoint=fake_hub.base_url)
    msg = str(info.value)
    assert "lora_weights_comfy.safetensors: LoRA health check failed: 1 tensor(s) hold NaN/Inf" in msg
    assert "diffusion_model.transformer_blocks.0.attn1.to_q.lora_B.weight" in msg and "Refusing to upload" in msg
    assert "optimization.learning_rate" in msg
    assert fake_hub.requests == [] and fake_hub.commits == []  # checked before the token or the network
    assert hub_main([str(lora_output), REPO_ID, "--endpoint", fake_hub.base_url]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "to_q.lora_B.weight" in err and "Traceback" not in err
    assert fake_hub.requests == []


def test_card_facts_are_collected_once_and_render_purely(lora_output):
    from ltx_train_lib.hub import card, facts

    f = hub.collect_card_facts(lora_output, repo_id=REPO_ID)
    assert (f.kind, f.files, f.rank, f.alpha, f.steps, f.trigger_word) == (
        "lora",
        ("lora_weights.safetensors", "lora_weights_comfy.safetensors"),
        "4",
        "8",
        "10",
        "zxq",
    )
    assert f.resolution_buckets == ("768x512x49", "512x512x49") and f.samples_step == 10
    assert [(s.path_in_repo, s.prompt) for s in f.samples] == [
        ("sample_videos/step_000010_p0_v0.gif", PROMPTS[0]),
        ("sample_videos/step_000010_p1_v0.gif", PROMPTS[1]),
    ]
    readme = hub.render_model_card(f)
    assert readme == card.render_model_card(f)  # same facts, same text: nothing else is read
    # the pre-split keyword signature renders the same card from the same pieces
    assert readme == hub.render_model_card(
        repo_id=REPO_ID,
        kind="lora",
        files=list(f.files),
        config=f.config,
        weights_metadata=f.weights_metadata,
        samples=[(s.path_in_repo, s.prompt) for s in f.samples],
        trigger_word=None,
        samples_step=10,
    )
    with pytest.raises(TypeError, match="not both"):
        hub.render_model_card(f, repo_id=REPO_ID)
    # the family part comes from the one family function; the generic modules name no LTX class, repo or node
    family = hub.family_card_text(f)
    assert "LTXPipeline" in family.usage_code and "LoraLoaderModelOnly" in family.comfyui_instructions
    assert family.base_model.hub_id == "Lightricks/LTX-Video" and family.licence == "other"
    for module in (card, facts, hub.upload, hub.samples, hub.folder, hub.errors):
        source = Path(module.__file__).read_text(encoding="utf-8")
        for name in ("LTXPipeline", "LTXVideo", "Lightricks", "LoraLoader", "models.ltxv", "T5"):
            assert name not in source, f"{module.__name__} names {name}"
