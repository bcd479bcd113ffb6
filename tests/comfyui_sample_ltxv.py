"""Sample LTX-Video latents with ComfyUI's own code; run with ComfyUI's Python (tests/test_known_answer.py does).

    <comfyui-python> tests/comfyui_sample_ltxv.py SPEC.json

Imports the real ComfyUI from ``spec["comfyui"]`` (nothing of ComfyUI is copied here) and, for each job of the spec:

1. builds ComfyUI's LTXV model from a ComfyUI-layout diffusion-model file through ComfyUI's loader, with a ``config``
   metadata entry giving the dims (ComfyUI's model detection reads only that entry and otherwise assumes the 2B/13B
   dims): ``comfy.sd.load_diffusion_model_state_dict(..., metadata=)`` (UNETLoader) where this ComfyUI takes the
   metadata, else ``comfy.sd.load_state_dict_guess_config`` (CheckpointLoaderSimple);
2. applies a LoRA file as LoraLoaderModelOnly does: ``comfy.utils.load_torch_file`` + ``comfy.sd.load_lora_for_models``;
3. conditions on the given prompt embeddings (with their attention mask, as ComfyUI's T5 encoder hands them over),
   sets the frame rate with the ``LTXVConditioning`` node, patches the model with ``ModelSamplingLTXV``, takes the
   sigmas of ``LTXVScheduler`` (both with the latent, so the shift uses its token count), and samples with euler at
   cfg 1 through ``comfy.sample.sample_custom`` (SamplerCustom's call) from ``comfy.sample.prepare_noise``;
4. writes the latents [1, C, F, H, W] to ``<out_dir>/<job name>.safetensors``.

SamplerCustom itself is not used: its ``fix_empty_latent_channels`` widens an all-zero latent to LTXV's 128
channels, which the tiny model (8 channels) cannot take. Writes ``<out_dir>/report.json``: the ComfyUI version, the
loader used, and per job the LoRA keys ComfyUI logged as not loaded and the number of weights it patched.
"""

from __future__ import annotations

import inspect
import json
import os
import sys

from comfyui_script import call_node, start_comfyui


def main(spec_path: str) -> int:
    with open(spec_path) as fh:
        spec = json.load(fh)
    capture, version = start_comfyui(spec["comfyui"])
    import comfy.model_management
    import comfy.sample
    import comfy.samplers
    import comfy.sd
    import comfy.utils
    import torch
    from comfy_extras.nodes_lt import LTXVConditioning, LTXVScheduler, ModelSamplingLTXV
    from safetensors.torch import load_file, save_file

    metadata = {"config": json.dumps({"transformer": spec["transformer_config"]})}
    unet_takes_metadata = "metadata" in inspect.signature(comfy.sd.load_diffusion_model_state_dict).parameters
    loader = "load_diffusion_model_state_dict" if unet_takes_metadata else "load_state_dict_guess_config"

    cond = load_file(spec["condition"])
    f, h, w = spec["latent_shape"]
    latent = torch.zeros(1, spec["channels"], f, h, w)
    latent_dict = {"samples": latent}
    embeds = cond["prompt_embeds"].float()
    positive = [[embeds, {"attention_mask": cond["prompt_attention_mask"].long()}]]
    negative = [[torch.zeros_like(embeds), {"attention_mask": cond["prompt_attention_mask"].long()}]]
    positive, negative = call_node(LTXVConditioning, positive=positive, negative=negative, frame_rate=float(spec["fps"]))[:2]
    sigmas = call_node(LTXVScheduler, steps=spec["steps"], max_shift=2.05, base_shift=0.95, stretch=True, terminal=0.1,
                   latent=latent_dict)[0]
    report = {"comfyui": version, "loader": loader, "sigmas": [float(s) for s in sigmas], "jobs": {}}
    os.makedirs(spec["out_dir"], exist_ok=True)

    for job in spec["jobs"]:
        sd = comfy.utils.load_torch_file(job["model"], safe_load=True)
        sd = {k.removeprefix("model.").removeprefix("diffusion_model."): v for k, v in sd.items()}  # a checkpoint's keys
        if unet_takes_metadata:
            model = comfy.sd.load_diffusion_model_state_dict(sd, model_options={"dtype": torch.float32}, metadata=metadata)
        else:
            ckpt = {"model.diffusion_model." + k: v for k, v in sd.items()}
            model = comfy.sd.load_state_dict_guess_config(ckpt, output_vae=False, output_clip=False,
                                                          model_options={"dtype": torch.float32}, metadata=metadata)[0]
        info = {"model_class": type(model.model).__name__}
        if job.get("lora"):
            lora = comfy.utils.load_torch_file(job["lora"], safe_load=True)
            capture.messages.clear()
            model, _ = comfy.sd.load_lora_for_models(model, None, lora, 1.0, 0)
            info["not_loaded"] = [m for m in capture.messages if "lora key not loaded" in m]
            info["patched"] = len(model.patches)
        model = call_node(ModelSamplingLTXV, model=model, max_shift=2.05, base_shift=0.95, latent=latent_dict)[0]
        noise = comfy.sample.prepare_noise(latent, spec["seed"])
        sampler = comfy.samplers.sampler_object("euler")
        out = comfy.sample.sample_custom(model, noise, 1.0, sampler, sigmas, positive, negative, latent,
                                         disable_pbar=True, seed=spec["seed"])
        save_file({"latents": out.float().contiguous()}, os.path.join(spec["out_dir"], f"{job['name']}.safetensors"))
        report["jobs"][job["name"]] = info
        del model
        comfy.model_management.unload_all_models()
    with open(os.path.join(spec["out_dir"], "report.json"), "w") as fh:
        json.dump(report, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
