"""Check LoRA files against ComfyUI's own key map; run with ComfyUI's Python (tests/test_lora_health.py does).

    <comfyui-python> tests/comfyui_lora_keys.py SPEC.json

Imports the real ComfyUI from ``spec["comfyui"]``, builds its LTXV model from a ComfyUI-layout diffusion-model file
(``spec["model"]``, dims from ``spec["transformer_config"]``, as tests/comfyui_sample_ltxv.py does), then for each
LoRA of ``spec["loras"]`` runs the pack's ``nodes/comfy.py`` ``lora_load_check`` (ComfyUI's key map and loader, no
patching) and, for comparison, ComfyUI's ``load_lora_for_models`` with its "lora key not loaded" log lines.
Writes ``spec["out"]``: {name: {"check": ComfyKeyCheck, "comfy_not_loaded": [keys ComfyUI logged]}}.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import logging
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def main(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    capture = _Capture()
    logging.getLogger().addHandler(capture)
    logging.getLogger().setLevel(logging.INFO)
    sys.path.insert(0, spec["comfyui"])
    sys.path.append(str(REPO))  # ltx_train_lib, after ComfyUI's own top-level modules (its nodes.py must win)
    os.chdir(spec["comfyui"])
    sys.argv = [sys.argv[0], "--cpu"]
    import comfy.options

    comfy.options.enable_args_parsing()
    from comfy.cli_args import args

    args.cpu = True
    import comfy.model_management
    import comfy.sd
    import comfy.utils
    import folder_paths  # noqa: F401 - with comfy.model_management loaded, the pack sees it runs inside ComfyUI
    import torch

    # The pack's ComfyUI access module, by path: the name "nodes" is ComfyUI's own.
    loader = importlib.util.spec_from_file_location("ltx_trainer_pack_comfy", REPO / "nodes" / "comfy.py")
    pack = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(pack)
    assert pack.in_comfyui()

    metadata = {"config": json.dumps({"transformer": spec["transformer_config"]})}
    sd = comfy.utils.load_torch_file(spec["model"], safe_load=True)
    sd = {k.removeprefix("model.").removeprefix("diffusion_model."): v for k, v in sd.items()}
    if "metadata" in inspect.signature(comfy.sd.load_diffusion_model_state_dict).parameters:
        model = comfy.sd.load_diffusion_model_state_dict(sd, model_options={"dtype": torch.float32}, metadata=metadata)
    else:
        ckpt = {"model.diffusion_model." + k: v for k, v in sd.items()}
        model = comfy.sd.load_state_dict_guess_config(ckpt, output_vae=False, output_clip=False,
                                                      model_options={"dtype": torch.float32}, metadata=metadata)[0]
    report = {}
    for name, path in spec["loras"].items():
        lora = comfy.utils.load_torch_file(path, safe_load=True)
        check = pack.lora_load_check(model, lora)
        capture.messages.clear()
        comfy.sd.load_lora_for_models(model, None, lora, 1.0, 0)
        logged = [m.split("lora key not loaded:", 1)[1].strip() for m in capture.messages if "lora key not loaded" in m]
        report[name] = {"check": check.model_dump(), "comfy_not_loaded": sorted(logged)}
    Path(spec["out"]).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
