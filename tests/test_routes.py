"""nodes/routes.py served by a real aiohttp server (no ComfyUI): payloads, file serving, refusals, cancel."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

aiohttp = pytest.importorskip("aiohttp")
from aiohttp import web  # noqa: E402
from aiohttp.test_utils import TestClient, TestServer  # noqa: E402

from ltx_train_lib.events import EventWriter  # noqa: E402
from nodes import routes  # noqa: E402
from tests.test_job_files import make_job as make_job_folder  # noqa: E402

SECRET = "top-secret-content"


def make_job(root: Path, job_id: str, status: str = "running", pgid: int | None = None, events=()) -> Path:
    return make_job_folder(root, job_id, status, pgid, events, name=f"LoRA {job_id}", created=time.time() - 5)


@pytest.fixture
def jobs_root(tmp_path) -> Path:
    root = tmp_path / "output" / "ltx_trainer" / "jobs"
    folder = make_job(
        root,
        "j1",
        status="done",
        events=[
            {"event": "started", "step": 0, "total": 3},
            {"event": "step", "step": 1, "total": 3, "loss": float("nan"), "lr": 1e-4},  # json writes NaN
            {"event": "step", "step": 2, "total": 3, "loss": 0.5, "lr": 1e-4, "memory_mb": 100.0},
            {"event": "sample", "step": 2, "paths": ["validation_samples/step_000002_0.mp4"], "prompts": ["a cat"]},
            {"event": "done", "step": 3, "total": 3, "seconds": 9.0, "outputs": {}},
        ],
    )
    (folder / "validation_samples").mkdir()
    (folder / "validation_samples" / "step_000002_0.mp4").write_bytes(bytes(range(256)) * 4)
    (folder / "training_config.yaml").write_text("lora:\n  rank: 8\n")
    (folder / "page.html").write_text("<script>alert(1)</script>")
    (tmp_path / "secret.txt").write_text(SECRET)
    (tmp_path / "output" / "ltx_trainer" / "secret.txt").write_text(SECRET)
    (folder / "escape.mp4").symlink_to(tmp_path / "secret.txt")
    os.link(tmp_path / "secret.txt", folder / "hard.mp4")  # the same file under a name inside the job folder
    (folder / "x%41.mp4").write_bytes(b"literal percent")
    (folder / "xA.mp4").write_bytes(b"letter A")
    return root


def run(coro):
    return asyncio.run(coro)


async def _client(root: Path, via_table: bool = False) -> TestClient:
    app = web.Application()
    if via_table:  # how ComfyUI mounts them: a RouteTableDef added to the app later
        table = web.RouteTableDef()
        routes.add_routes(table, lambda: root)
        app.add_routes(table)
    else:
        routes.add_routes(app, lambda: root)
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


def strict_json(text: str):
    def refuse(name):
        raise ValueError(f"{name} is not JSON (the browser's JSON.parse rejects it)")

    return json.loads(text, parse_constant=refuse)


async def raw_get(client: TestClient, target: str) -> tuple[int, bytes]:
    """Send a request line byte for byte: aiohttp's client would normalise '..' and re-encode the path."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(f"GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode("latin-1"))
    await writer.drain()
    data = await reader.read()
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


# -------------------------------------------------------------------------------------------------------- reads


@pytest.mark.parametrize("via_table", [False, True])
def test_list_and_get_job(jobs_root, via_table):
    async def go():
        client = await _client(jobs_root, via_table)
        try:
            r = await client.get("/ltx_trainer/jobs")
            assert r.status == 200
            jobs = strict_json(await r.text())["jobs"]
            assert [(j["id"], j["status"], j["step"], j["total"]) for j in jobs] == [("j1", "finished", 3, 3)]

            r = await client.get("/ltx_trainer/jobs/j1")
            assert r.status == 200
            body = strict_json(await r.text())  # the NaN loss must have become null
            assert body["job"]["name"] == "LoRA j1"
            assert body["next"] == 5 and len(body["events"]) == 5
            assert body["events"][1]["loss"] is None
            state = body["state"]
            assert state["status"] == "finished"
            assert [s["loss"] for s in state["steps"]] == [None, 0.5]
            assert state["samples"][0]["files"] == ["validation_samples/step_000002_0.mp4"]

            r = await client.get("/ltx_trainer/jobs/j1?events=0")
            assert "events" not in strict_json(await r.text())
        finally:
            await client.close()

    run(go())


def test_events_since(jobs_root):
    async def go():
        client = await _client(jobs_root)
        try:
            body = await (await client.get("/ltx_trainer/jobs/j1/events?since=3")).json()
            assert [e["event"] for e in body["events"]] == ["sample", "done"] and body["next"] == 5
            assert (body["status"], body["error"]) == ("finished", None)
            EventWriter(jobs_root / "j1" / "events.jsonl").emit("started", step=3, total=6)  # a resume appends
            body = await (await client.get("/ltx_trainer/jobs/j1/events?since=5")).json()
            assert [e["event"] for e in body["events"]] == ["started"] and body["next"] == 6
            r = await client.get("/ltx_trainer/jobs/j1/events?since=abc")
            assert r.status == 400 and "since" in (await r.json())["error"]
        finally:
            await client.close()

    run(go())


def test_missing_root_and_unknown_job(tmp_path):
    async def go():
        client = await _client(tmp_path / "never_created")
        try:
            assert (await (await client.get("/ltx_trainer/jobs")).json()) == {"jobs": []}
            r = await client.get("/ltx_trainer/jobs/nope")
            assert r.status == 404 and "no job 'nope'" in (await r.json())["error"]
            r = await client.get("/ltx_trainer/jobs/nope/events")
            assert r.status == 404
        finally:
            await client.close()

    run(go())


# -------------------------------------------------------------------------------------------------------- files


def test_file_download_with_range_and_safe_headers(jobs_root):
    async def go():
        client = await _client(jobs_root)
        try:
            url = "/ltx_trainer/jobs/j1/files/validation_samples/step_000002_0.mp4"
            r = await client.get(url)
            assert r.status == 200 and len(await r.read()) == 1024
            assert r.headers["Content-Type"] == "video/mp4"
            assert r.headers["Content-Security-Policy"] == "sandbox"
            r = await client.get(url, headers={"Range": "bytes=0-9"})  # <video> seeks with range requests
            assert r.status == 206 and await r.read() == bytes(range(10))
            r = await client.get("/ltx_trainer/jobs/j1/files/training_config.yaml")
            assert r.headers["Content-Type"].startswith("text/plain") and "rank: 8" in await r.text()
            r = await client.get("/ltx_trainer/jobs/j1/files/page.html")
            assert r.headers["Content-Security-Policy"] == "sandbox"  # served, but can't run script in our origin
        finally:
            await client.close()

    run(go())


@pytest.mark.parametrize(
    "target",
    [
        "/ltx_trainer/jobs/j1/files/../../secret.txt",
        "/ltx_trainer/jobs/j1/files/validation_samples/../../../../secret.txt",
        "/ltx_trainer/jobs/j1/files/..%2f..%2fsecret.txt",
        "/ltx_trainer/jobs/j1/files/..%2F..%2F..%2Fsecret.txt",
        "/ltx_trainer/jobs/j1/files/%2e%2e/%2e%2e/secret.txt",
        "/ltx_trainer/jobs/j1/files/%252e%252e/%252e%252e/secret.txt",
        "/ltx_trainer/jobs/j1/files/%2Fetc%2Fpasswd",
        "/ltx_trainer/jobs/j1/files//etc/passwd",
        "/ltx_trainer/jobs/j1/files/..%5c..%5csecret.txt",
        "/ltx_trainer/jobs/j1/files/..\\..\\secret.txt",
        "/ltx_trainer/jobs/j1/files/job.json%00.mp4",
        "/ltx_trainer/jobs/j1/files/escape.mp4",
        "/ltx_trainer/jobs/j1/files/hard.mp4",
        "/ltx_trainer/jobs/..%2fsecret.txt/files/x",
        "/ltx_trainer/jobs/%2e%2e/files/secret.txt",
        "/ltx_trainer/jobs/../files/secret.txt",
        "/ltx_trainer/jobs/j1%2f..%2f../files/secret.txt",
    ],
)
def test_file_traversal_is_refused(jobs_root, target):
    async def go():
        client = await _client(jobs_root)
        try:
            status, body = await raw_get(client, target)
        finally:
            await client.close()
        assert status in (403, 404), (status, body[:200])
        assert SECRET.encode() not in body and b"root:" not in body

    run(go())


def test_refusals_have_the_right_status_and_message(jobs_root):
    async def go():
        client = await _client(jobs_root)
        try:
            status, body = await raw_get(client, "/ltx_trainer/jobs/j1/files/..%2fsecret.txt")
            assert status == 403 and b"refused file path" in body
            status, body = await raw_get(client, "/ltx_trainer/jobs/%2e%2e/files/secret.txt")
            assert status == 403 and b"not a plain folder name" in body
            status, body = await raw_get(client, "/ltx_trainer/jobs/j1/files/missing.mp4")
            assert status == 404 and b"has no file" in body
            status, _ = await raw_get(client, "/ltx_trainer/jobs/j1/files/validation_samples")
            assert status == 404
            status, body = await raw_get(client, "/ltx_trainer/jobs/j1/files/hard.mp4")
            assert status == 403 and b"hard link" in body
        finally:
            await client.close()

    run(go())


async def _api_client(root: Path) -> TestClient:
    """The routes mounted as ComfyUI also serves them: each one again under /api/."""
    table = web.RouteTableDef()
    routes.add_routes(table, lambda: root)
    app = web.Application()
    app.add_routes(table)
    for route in table:
        app.router.add_route(route.method, "/api" + route.path, route.handler)
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


@pytest.mark.parametrize("prefix", ["", "/api"])
def test_file_path_is_decoded_exactly_once(jobs_root, prefix):
    """The client escapes the '%' of a file named x%41.mp4 as %25: that file is served, not xA.mp4."""

    async def go():
        client = await _api_client(jobs_root)
        try:
            status, body = await raw_get(client, f"{prefix}/ltx_trainer/jobs/j1/files/x%2541.mp4")
            assert (status, body) == (200, b"literal percent")
            status, body = await raw_get(client, f"{prefix}/ltx_trainer/jobs/j1/files/x%41.mp4")
            assert (status, body) == (200, b"letter A")
            url = f"{prefix}/ltx_trainer/jobs/j1/files/validation_samples%2Fstep_000002_0.mp4?cache=1"
            status, body = await raw_get(client, url)  # an escaped '/' is a separator, the query is no part of it
            assert status == 200 and body == bytes(range(256)) * 4
        finally:
            await client.close()

    run(go())


def test_error_replies_name_no_server_path(jobs_root, tmp_path, monkeypatch):
    broken = make_job(jobs_root, "broken")
    (broken / "job.json").write_text("{not json")
    targets = [
        ("GET", "/ltx_trainer/jobs/nope", 404),
        ("GET", "/ltx_trainer/jobs/nope/events", 404),
        ("GET", "/ltx_trainer/jobs/j1/files/missing.mp4", 404),
        ("GET", "/ltx_trainer/jobs/j1/files/escape.mp4", 403),
        ("GET", "/ltx_trainer/jobs/j1/files/hard.mp4", 403),
        ("GET", "/ltx_trainer/jobs/broken", 200),  # shown as unknown, with the reason
        ("GET", "/ltx_trainer/jobs", 200),
        ("POST", "/ltx_trainer/jobs/broken/cancel", 409),
    ]

    async def go():
        client = await _client(jobs_root)
        try:
            for method, url, want in targets:
                r = await client.request(method, url)
                body = strict_json(await r.text())
                assert r.status == want, (url, r.status, body)
                if want != 200:
                    errors = [body["error"]]
                elif "jobs" in body:
                    errors = [j["error"] for j in body["jobs"] if j["id"] == "broken"]
                else:  # the state carries the folders themselves (the panel needs them), but not in its errors
                    errors = [body["job"]["error"], body["state"]["error"]["message"]]
                assert errors and all(errors), (url, body)
                for error in errors:
                    assert str(tmp_path) not in error and str(tmp_path.resolve()) not in error, (url, error)
            body = await (await client.get("/ltx_trainer/jobs/broken")).json()
            assert "not valid JSON" in body["state"]["error"]["message"]
        finally:
            await client.close()

    run(go())


def test_unexpected_failures_are_one_json_message(jobs_root, tmp_path, monkeypatch):
    """An OSError the library did not foresee, or a bug: a JSON message for the panel, no traceback, no path."""
    import errno

    from ltx_train_lib import jobs

    def io_error(root, job_id, url_path):
        raise OSError(errno.EIO, "Input/output error", str(Path(root) / job_id / "validation_samples" / "a.mp4"))

    def bug(root):
        raise KeyError("oops")

    monkeypatch.setattr(jobs, "resolve_job_file", io_error)
    monkeypatch.setattr(jobs, "list_jobs", bug)

    async def go():
        client = await _client(jobs_root)
        try:
            r = await client.get("/ltx_trainer/jobs/j1/files/validation_samples/a.mp4")
            text = await r.text()
            assert r.status == 500 and str(tmp_path) not in text
            assert strict_json(text) == {"error": "job 'j1' cannot be read (a.mp4): Input/output error"}
            r = await client.get("/ltx_trainer/jobs")
            text = await r.text()
            assert r.status == 500 and "Traceback" not in text and "oops" not in text
            assert "internal error" in strict_json(text)["error"]
        finally:
            await client.close()

    run(go())


# -------------------------------------------------------------------------------------------------------- cancel


@pytest.mark.skipif(not hasattr(os, "killpg"), reason="process groups are POSIX")
def test_cancel(jobs_root):
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        make_job(jobs_root, "live", pgid=proc.pid, events=[{"event": "started", "step": 0, "total": 10}])

        async def go():
            client = await _client(jobs_root)
            try:
                assert (await (await client.get("/ltx_trainer/jobs/live")).json())["state"]["status"] == "running"
                r = await client.post("/ltx_trainer/jobs/live/cancel")
                assert r.status == 200
                body = await r.json()
                assert body["job_id"] == "live" and body["signalled"] is True
                assert proc.wait(timeout=10) == -signal.SIGTERM
                r = await client.post("/ltx_trainer/jobs/j1/cancel")  # finished: nothing to do
                assert (await r.json()) == {"job_id": "j1", "signalled": False, "status": "finished"}
                r = await client.post("/ltx_trainer/jobs/nope/cancel")
                assert r.status == 404
                r = await client.get("/ltx_trainer/jobs/live/cancel")
                assert r.status == 405  # state changes only by POST
            finally:
                await client.close()

        run(go())
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


# ---------------------------------------------------------------------------------------------- ComfyUI registration


def test_registration_is_a_noop_outside_comfyui(monkeypatch):
    monkeypatch.setitem(sys.modules, "server", None)  # `import server` fails
    assert routes.register_with_comfyui() is False


def test_registration_with_a_comfyui_like_server(monkeypatch, tmp_path):
    table = web.RouteTableDef()
    fake_server = types.ModuleType("server")
    fake_server.PromptServer = type("PromptServer", (), {"instance": types.SimpleNamespace(routes=table)})
    monkeypatch.setitem(sys.modules, "server", fake_server)
    fake_folder_paths = types.ModuleType("folder_paths")
    fake_folder_paths.get_output_directory = lambda: str(tmp_path / "output")
    monkeypatch.setitem(sys.modules, "folder_paths", fake_folder_paths)

    assert routes.register_with_comfyui() is True
    assert routes.register_with_comfyui() is True  # a second import must not add duplicate routes
    paths = sorted((r.method, r.path) for r in table)
    assert paths == [
        ("GET", "/ltx_trainer/jobs"),
        ("GET", "/ltx_trainer/jobs/{job_id}"),
        ("GET", "/ltx_trainer/jobs/{job_id}/events"),
        ("GET", "/ltx_trainer/jobs/{job_id}/files/{path:.*}"),
        ("POST", "/ltx_trainer/jobs/{job_id}/cancel"),
    ]
    assert routes.comfy_jobs_root() == tmp_path / "output" / "ltx_trainer" / "jobs"
