"""pyproject.toml carries what the ComfyUI registry reads (https://docs.comfy.org/registry/specifications) and the
icon it names is in the repository."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
REPO_URL = "https://github.com/ltx-trainer/ComfyUI-LTX-Trainer"
RAW_PREFIX = "https://raw.githubusercontent.com/ltx-trainer/ComfyUI-LTX-Trainer/main/"


def test_project_fields_the_registry_reads() -> None:
    project = PYPROJECT["project"]
    # node id: < 100 characters, letters/digits/-/_/., no consecutive specials, starts with a letter
    assert len(project["name"]) < 100 and re.fullmatch(r"[A-Za-z](?:[A-Za-z0-9]|[-_.](?=[A-Za-z0-9]))*", project["name"])
    assert re.fullmatch(r"\d+\.\d+\.\d+", project["version"])  # X.Y.Z
    assert project["description"].strip() and project["license"] in ({"text": "Apache-2.0"}, {"file": "LICENSE"})
    urls = project["urls"]
    assert urls["Repository"] == REPO_URL
    assert urls["Documentation"].startswith(REPO_URL) and urls["Bug Tracker"] == f"{REPO_URL}/issues"
    assert urls.get("Issues", urls["Bug Tracker"]) == urls["Bug Tracker"]
    # torch belongs to ComfyUI's environment
    assert not [d for d in project["dependencies"] if re.match(r"(torch|torchvision|torchaudio)\b", d)]


def test_tool_comfy_and_its_icon() -> None:
    comfy = PYPROJECT["tool"]["comfy"]
    assert comfy["PublisherId"] == "ltx-trainer" and comfy["DisplayName"] == "LTX Trainer"
    assert re.fullmatch(r">=\d+\.\d+\.\d+", comfy["requires-comfyui"])
    icon_url = comfy["Icon"]
    assert icon_url.startswith(RAW_PREFIX), icon_url
    icon = ROOT / icon_url.removeprefix(RAW_PREFIX)
    assert icon.is_file(), f"{icon} is named by [tool.comfy] Icon but not in the repository"
    with Image.open(icon) as im:
        assert im.format == "PNG" and im.width <= 800 and im.height <= 400 and im.width == im.height  # registry limits
        pixels = im.convert("RGBA")
    # the committed icon is what docs/make_icon.py draws (pixels, not bytes: PNG encoders differ)
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        from make_icon import draw_icon
    finally:
        sys.path.remove(str(ROOT / "docs"))
    assert pixels.tobytes() == draw_icon(pixels.width).tobytes()


def test_the_editable_install_still_builds(tmp_path: Path) -> None:
    """What the Makefile's ``pip install --no-deps -e .`` builds, as a wheel from a copy of the sources (a build
    writes build/ and *.egg-info next to them)."""
    import shutil

    src = tmp_path / "src"
    shutil.copytree(ROOT / "ltx_train_lib", src / "ltx_train_lib", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(src)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wheel,) = tmp_path.glob("comfyui_ltx_trainer-*.whl")
    import zipfile

    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        meta = zf.read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert "ltx_train_lib/lora_health.py" in names and "ltx_train_lib/events.schema.json" in names
    assert f"Project-URL: Bug Tracker, {REPO_URL}/issues" in meta
