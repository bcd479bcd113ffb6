"""``decode_latents.py LATENTS_DIR OUTPUT_DIR``: VAE-decode precomputed latents to look at them.

The reference trainer's script (reference/ltx-video-trainer.md §1.2): every ``*.pt`` under LATENTS_DIR (the
reference's latents schema: ``latents``, ``num_frames``, ``height``, ``width``, ``fps``), at any depth, is
denormalised, decoded and written to the same relative path under OUTPUT_DIR: an mp4 at the stored fps, or a PNG
for a 1-frame latent. Works on ``latents/``, ``reference_latents/`` or a whole ``.precomputed/`` folder (the
``conditions/`` files there are recognised and passed over).

Exit status: 0 when every latents file was decoded, 1 when some could not be (each is listed), 2 for bad
arguments or a model that cannot load.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ltx_train_lib.errors import DatasetError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
LATENT_KEYS = ("latents", "num_frames", "height", "width")

log = logging.getLogger("ltx_train_lib.cli.decode_latents")


@dataclass
class DecodeResult:
    written: list[Path] = field(default_factory=list)
    passed_over: list[Path] = field(default_factory=list)  # .pt files that hold no latents (e.g. conditions/)
    failed: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        text = f"{len(self.written)} file(s) decoded, {len(self.failed)} failed"
        if self.passed_over:
            text += f", {len(self.passed_over)} non-latent .pt file(s) passed over"
        text += "."
        if self.failed:
            text += "\nFailed:\n" + "\n".join(f"  - {path}: {reason}" for path, reason in self.failed)
        return text


def find_latent_files(latents_dir: Path) -> list[Path]:
    """``*.pt`` at any depth, without hidden/temp files (atomic writes name theirs ``.<name>.<random>.tmp``). In a
    whole ``.precomputed/`` folder the keyed caches under ``cache/`` are left out: the top level is the current
    cache (pass a ``cache/<key>`` folder to decode another one)."""
    from ltx_train_lib.precompute import MANIFEST_NAME, STORE_DIR

    keyed = (latents_dir / MANIFEST_NAME).is_file()
    return sorted(
        p
        for p in latents_dir.rglob("*.pt")
        if p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(latents_dir).parts)
        and not (keyed and p.relative_to(latents_dir).parts[0] == STORE_DIR)
    )


def output_path_for(latents_file: Path, latents_dir: Path, output_dir: Path, num_frames: int) -> Path:
    """``<rel>.pt`` -> ``OUTPUT_DIR/<rel>.mp4`` (``.png`` for one latent frame)."""
    return (output_dir / latents_file.relative_to(latents_dir)).with_suffix(".png" if num_frames == 1 else ".mp4")


def decode_latents_dir(
    latents_dir: str | Path,
    output_dir: str | Path,
    *,
    model_source: str = "LTXV_13B_097_DEV",
    device: str | None = None,
    vae_tiling: bool = False,
    seed: int = 42,
    progress: Callable[[int, int, str], None] | None = None,
) -> DecodeResult:
    """Decode every latents file under ``latents_dir`` into ``output_dir``; a bad file is listed, not fatal."""
    import torch

    from ltx_train_lib.precompute import _load_vae, _pick_device, decode_latents_file

    latents_dir, output_dir = Path(latents_dir).expanduser(), Path(output_dir).expanduser()
    if not latents_dir.is_dir():
        raise DatasetError(f"{latents_dir}: not a folder; pass the folder of .pt latents (e.g. .precomputed/latents)")
    files = find_latent_files(latents_dir)
    if not files:
        raise DatasetError(f"{latents_dir}: no .pt files found; preprocess the dataset first (preprocess_dataset.py)")
    torch.manual_seed(seed)  # decoding is deterministic at timestep 0; seeded anyway, as the reference's --seed
    vae = _load_vae(model_source, _pick_device(device), vae_tiling)
    result = DecodeResult()
    for i, path in enumerate(files):
        if progress is not None:
            progress(i, len(files), str(path.relative_to(latents_dir)))
        try:
            header = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - torch.load raises many types on a damaged file
            result.failed.append((path, f"cannot be read as a torch file ({exc}); re-run preprocessing"))
            continue
        if not isinstance(header, dict) or "latents" not in header:
            result.passed_over.append(path)  # e.g. a conditions/ file when given the whole .precomputed folder
            continue
        missing = [k for k in LATENT_KEYS if k not in header]
        if missing:
            result.failed.append((path, f"lacks {', '.join(missing)}; not a latents file of the expected schema"))
            continue
        target = output_path_for(path, latents_dir, output_dir, int(header["num_frames"]))
        try:
            decode_latents_file(vae, path, target)
        except (RuntimeError, ValueError) as exc:
            result.failed.append(
                (path, f"could not be decoded ({exc}); check that --model-source is the model that encoded it")
            )
            continue
        result.written.append(target)
    if progress is not None:
        progress(len(files), len(files), "done")
    return result


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="decode_latents.py",
        description="Decode precomputed VAE latents (.pt, at any depth) to mp4 videos (PNG for 1-frame latents) "
        "at their stored fps, mirroring the folder structure, to check preprocessing by eye.",
    )
    p.add_argument(
        "latents_dir", metavar="LATENTS_DIR", help="folder of .pt latents, e.g. DATASET/.precomputed/latents"
    )
    p.add_argument("output_dir", metavar="OUTPUT_DIR", help="where the decoded videos/images are written")
    p.add_argument(
        "--model-source",
        default="LTXV_13B_097_DEV",
        help="the model whose VAE encoded the latents: named version, local folder, .safetensors file, Hub repo id "
        "or 'tiny' (default: LTXV_13B_097_DEV)",
    )
    p.add_argument("--vae-tiling", action="store_true", help="decode in tiles: less memory for large resolutions")
    p.add_argument("--seed", type=int, default=42, help="random seed (default: 42)")
    p.add_argument("--device", default=None, help="torch device, e.g. cuda, cuda:1, cpu (default: cuda if available)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad arguments and 0 on --help
        return int(exc.code or 0)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    from ltx_train_lib.errors import LtxTrainError

    def progress(done: int, total: int, name: str) -> None:
        if done < total:
            log.info("%d/%d %s", done + 1, total, name)

    try:
        result = decode_latents_dir(
            args.latents_dir,
            args.output_dir,
            model_source=args.model_source,
            device=args.device,
            vae_tiling=args.vae_tiling,
            seed=args.seed,
            progress=progress,
        )
    except LtxTrainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(result.summary())
    return EXIT_OK if result.ok else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
