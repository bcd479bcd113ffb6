"""Decode and encode with an LTX-Video VAE through ComfyUI's own loaders; run with ComfyUI's Python
(tests/test_comfy_vae.py does).

    <comfyui-python> tests/comfyui_vae_decode.py SPEC.json

Imports the real ComfyUI from ``spec["comfyui"]`` (nothing of ComfyUI is copied here) and, for each job, loads the
file as ComfyUI's nodes do:

- ``"loader": "vae"``: ``comfy.utils.load_torch_file(..., return_metadata=True)`` then ``comfy.sd.VAE(sd=, metadata=)``
  (VAELoader's path on 0.33; 0.3.6x's VAELoader drops the metadata, so only its checkpoint loader reads the config);
- ``"loader": "checkpoint"``: CheckpointLoaderSimple's path, ``comfy.sd.load_checkpoint_guess_config`` (the VAE is
  its third output);

then decodes ``latent`` ([B, C, F, H, W], a ComfyUI LATENT: normalised) with ``VAE.decode`` and encodes ``pixels``
([F, H, W, 3] in 0..1, a ComfyUI IMAGE batch) with ``VAE.encode``. A timestep-conditioned decoder mixes noise into the
latent before decoding; ``"no_decode_noise": true`` turns that off (0.3.6x: the ``noise_scale`` decode option; 0.33
reads ``decode_noise_scale`` from the file's config instead). Writes ``<out_dir>/<name>.safetensors`` (``decoded``
[B, F, H, W, 3], ``encoded``) and ``<out_dir>/report.json``: the ComfyUI version and per job the load error (if
loading failed), the VAE's dtype, and the names the file and ComfyUI's module disagree on; and whether this
ComfyUI reads the first/last layer widths from the config (``reads_base_channels``; 0.3.6x does not).
"""

from __future__ import annotations

import inspect
import json
import os
import sys


def main(spec_path: str) -> int:
    with open(spec_path) as fh:
        spec = json.load(fh)
    sys.path.insert(0, spec["comfyui"])
    os.chdir(spec["comfyui"])
    sys.argv = [sys.argv[0], "--cpu"]
    import comfy.options

    comfy.options.enable_args_parsing()
    import comfy.model_management
    import comfy.sd
    import comfy.utils
    import torch
    from safetensors.torch import load_file, save_file

    try:
        from comfyui_version import __version__ as version
    except ImportError:
        version = "unknown"
    torch.set_num_threads(1)
    from comfy.ldm.lightricks.vae.causal_video_autoencoder import VideoVAE

    # 0.3.6x builds the encoder's first / decoder's last layers 128 wide whatever the config says
    reads_widths = "encoder_base_channels" in inspect.getsource(VideoVAE.__init__)
    report: dict = {"comfyui_version": version, "reads_base_channels": reads_widths, "jobs": {}}
    for job in spec["jobs"]:
        entry: dict = {}
        report["jobs"][job["name"]] = entry
        try:
            if job["loader"] == "checkpoint":
                vae = comfy.sd.load_checkpoint_guess_config(job["file"], output_vae=True, output_clip=False)[2]
                prefix = "vae."
            else:
                sd, metadata = comfy.utils.load_torch_file(job["file"], return_metadata=True)
                vae = comfy.sd.VAE(sd=sd, metadata=metadata)
                prefix = ""
        except Exception as e:  # noqa: BLE001 - reported to the test, which expects some files to fail
            entry["load_error"] = f"{type(e).__name__}: {e}"
            continue
        file_keys = {k[len(prefix) :] for k in load_file(job["file"]) if k.startswith(prefix)}
        module_keys = set(vae.first_stage_model.state_dict())
        entry.update(
            dtype=str(vae.vae_dtype),
            missing=sorted(module_keys - file_keys),
            unexpected=sorted(file_keys - module_keys),
        )
        options = {}
        if job.get("no_decode_noise") and "noise_scale" in inspect.signature(vae.first_stage_model.decode).parameters:
            options["noise_scale"] = 0.0
        tensors = load_file(job["inputs"])
        decoded = vae.decode(tensors["latent"], vae_options=options) if options else vae.decode(tensors["latent"])
        encoded = vae.encode(tensors["pixels"])
        save_file({"decoded": decoded.float().contiguous(), "encoded": encoded.float().contiguous()},
                  os.path.join(spec["out_dir"], f"{job['name']}.safetensors"))
    with open(os.path.join(spec["out_dir"], "report.json"), "w") as fh:
        json.dump(report, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
