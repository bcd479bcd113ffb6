"""Scene-splitting throughput: our splitter beside PySceneDetect's own command line, on the same file.

Prints figures (frames per second of source video processed, detection + splitting), never pass/fail.
PySceneDetect runs as `python -m scenedetect -i FILE -o DIR detect-content split-video` in this venv; it
splits with the ffmpeg binary bundled by imageio-ffmpeg (one ffmpeg process per scene).

    .venv/bin/python bench/scene_split.py [--frames 480] [--size 640x360] [--repeat 1]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ltx_train_lib import media, scenes, synthetic  # noqa: E402


def _clip_frames(folder: Path) -> list[int]:
    return [media.probe_media(p).num_frames for p in sorted(folder.glob("*.mp4"))]


def _ours(video: Path, out: Path) -> tuple[float, float, float, list[int]]:
    settings = scenes.SplitSettings()
    t0 = time.perf_counter()
    times = scenes.detect_scene_times(video, settings)
    t1 = time.perf_counter()
    planned, _ = scenes.plan_scenes(times, scenes._frame_times(video))
    scenes.write_scene_clips(video, planned, out)
    t2 = time.perf_counter()
    return t2 - t0, t1 - t0, t2 - t1, _clip_frames(out)


def _pyscenedetect_cli(video: Path, out: Path) -> tuple[float, list[int]]:
    cmd = [sys.executable, "-m", "scenedetect", "-i", str(video), "-o", str(out), "-q", "detect-content", "split-video"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        print(f"scenedetect failed (rc {proc.returncode}):\n{proc.stderr[-2000:]}")
        return float("nan"), []
    return elapsed, _clip_frames(out)


def _pyscenedetect_api(video: Path, out: Path) -> tuple[float, list[int]]:
    """The same work in-process (no interpreter start-up): detect() then split_video_ffmpeg()."""
    import scenedetect
    from scenedetect import split_video_ffmpeg

    t0 = time.perf_counter()
    scene_list = scenedetect.detect(str(video), scenedetect.ContentDetector())
    out.mkdir(parents=True, exist_ok=True)
    split_video_ffmpeg(str(video), scene_list, output_dir=str(out), show_progress=False)
    return time.perf_counter() - t0, _clip_frames(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=480, help="length of the generated video (24 fps)")
    parser.add_argument("--size", default="640x360", help="WxH of the generated video")
    parser.add_argument("--scene-length", type=int, default=96, help="frames between cuts")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each splitter; the best time is shown")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    cuts = tuple(range(args.scene_length, args.frames, args.scene_length))

    with tempfile.TemporaryDirectory() as tmp_str:
        tmp = Path(tmp_str)
        video = tmp / "bench.mp4"
        t0 = time.perf_counter()
        synthetic.make_scene_video(video, cuts=cuts, num_frames=args.frames, size=(width, height))
        print(
            f"source: {args.frames} frames {width}x{height} @24 fps, cuts at {list(cuts)} "
            f"(written in {time.perf_counter() - t0:.1f} s)"
        )

        best_ours = best_cli = best_api = None
        for r in range(args.repeat):
            res = _ours(video, tmp / f"ours{r}")
            best_ours = res if best_ours is None or res[0] < best_ours[0] else best_ours
            cli = _pyscenedetect_cli(video, tmp / f"cli{r}")
            best_cli = cli if best_cli is None or cli[0] < best_cli[0] else best_cli
            api = _pyscenedetect_api(video, tmp / f"api{r}")
            best_api = api if best_api is None or api[0] < best_api[0] else best_api
        assert best_ours is not None and best_cli is not None and best_api is not None
        total, detect, split, ours_frames = best_ours
        cli_total, cli_frames = best_cli
        api_total, api_frames = best_api
        n = args.frames
        expected = [b - a for a, b in synthetic.segment_bounds(cuts, n)]
        print(f"{'splitter':<34}{'seconds':>9}{'frames/s':>10}  clip frames (expected {expected})")
        print(f"{'ltx_train_lib (PyAV, 1 decode)':<34}{total:>9.2f}{n / total:>10.1f}  {ours_frames}")
        print(f"{'  detection (opencv backend)':<34}{detect:>9.2f}{n / detect:>10.1f}")
        print(f"{'  splitting (decode + x264)':<34}{split:>9.2f}{n / split:>10.1f}")
        print(f"{'scenedetect CLI (ffmpeg per scene)':<34}{cli_total:>9.2f}{n / cli_total:>10.1f}  {cli_frames}")
        print(f"{'scenedetect API, in-process':<34}{api_total:>9.2f}{n / api_total:>10.1f}  {api_frames}")
        print(
            f"throughput ratio ours/scenedetect: {cli_total / total:.2f}x vs its CLI (which includes Python "
            f"start-up and imports), {api_total / total:.2f}x vs its API in-process"
        )
        print("encoders: ours libx264 veryfast crf 18; scenedetect's ffmpeg libx264 veryfast crf 22")


if __name__ == "__main__":
    main()
