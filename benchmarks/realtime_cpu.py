"""Real time on this CPU: a 1280×720 30 fps live source through replay_fast.yaml, SAM 2 tiny at 256 px, `sync` vs
`async` (+ flow warp) in one run, alternating, on the shared 720p videos (when present) and a synthetic 720p clip.

A live source paces its capture thread at 30 fps and drops the oldest frame when the graph falls behind, as a
capture card does, so `frames_dropped` and `fps_processed` say whether the graph keeps up. SAM 2 is seeded with a
box on frame 0 and never released, so it runs on every frame it takes (the worst case). No mp4 is written, except
in the `async + mp4` rows, which add the overlay and the VideoFileSink. The synthetic clip is rendered to an mp4
first and replayed like the videos.

Usage: python -m benchmarks.realtime_cpu [--seconds 10] [--modes sync async] [--sam2-nice 0 10] [--no-mp4]
       [--sam2-backend onnxruntime --sam2-precision int8 --name realtime_cpu_int8] → benchmarks/results/NAME.json
`--sam2-nice` compares SAM 2 worker priorities (`runtime.nice`) source by source, back to back.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.common import write_result
from surgseg.app.graph_spec import read_yaml, validate
from surgseg.app.runtime import run_graph
from surgseg.graphs import graph_path

log = logging.getLogger("realtime_cpu")

VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"
DEMO_REFINER = Path("out/demo/refiner/refiner.onnx")
FPS = 30.0
SIZE = (1280, 720)
GOALS = {"fps_processed": 29.5, "frames_dropped": 0, "e2e_p99_ms": 100.0}


def synthetic_video(folder: Path, frames: int) -> Path:
    """A synthetic 720p clip rendered once into an mp4, so that the live source costs a decode, as a capture card's
    frames do, not the generator's rendering (tens of ms a frame at 720p on this CPU)."""
    from surgseg.engines.video.io import VideoWriter
    from surgseg.engines.video.synthetic import SyntheticClipConfig, synthetic_clip

    path = folder / "synthetic_720p.mp4"
    config = SyntheticClipConfig(size=SIZE, frames=frames, num_classes=2, seed=7, presence=((0, frames),))
    with VideoWriter(path, fps=FPS) as writer:
        for frame, _, _ in synthetic_clip(config):
            writer.write(frame)
    return path


def sources(folder: Path, frames: int) -> dict[str, dict[str, Any]]:
    """Live 720p sources, looped: the synthetic clip and the shared videos when present."""
    videos = [synthetic_video(folder, frames), *sorted(VIDEOS.glob("*.mp4"))]
    return {video.stem: {"type": "VideoFileSource", "path": str(video), "live": True, "loop": True}
            for video in videos}


def graph(source: dict[str, Any], mode: str, refiner: Path, out: Path, mp4: bool,
          sam2: dict[str, Any]) -> dict[str, Any]:
    raw = read_yaml(graph_path("replay_fast"))
    h, w = raw["operators"]["preproc"]["size"]
    raw["device"] = "cpu"
    raw["operators"]["source"] = source
    prior = raw["operators"]["prior"]
    prior["model"]["image_size"] = 256
    prior["seeding"] = {**prior.get("seeding", {}), "release_after": 0}
    prior["seed"] = {"box": [SIZE[0] * 0.35, SIZE[1] * 0.3, SIZE[0] * 0.65, SIZE[1] * 0.7]}
    prior["runtime"] = {**sam2, "mode": mode, "warp": "flow" if mode == "async" else "none"}
    raw["operators"]["refiner"].update(artifact=str(refiner), size=[h, w])
    raw["operators"]["metrics"]["path"] = str(out / "metrics.json")
    raw["operators"]["latency"].update(path=str(out / "latency.json"), warmup=5)
    if mp4:
        raw["operators"]["overlay"] = {"type": "Overlay"}
        raw["operators"]["video"] = {"type": "VideoFileSink", "path": str(out / "overlay.mp4")}
        raw["flows"] += [["ema", "overlay"], ["overlay", "video"]]
    return raw


def measure(name: str, source: dict[str, Any], mode: str, refiner: Path, frames: int, mp4: bool,
            sam2: dict[str, Any]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        raw = graph(dict(source), mode, refiner, out, mp4, sam2)
        run_graph(validate(raw, graph_path("replay_fast")), frame_limit=frames)
        latency = json.loads((out / "latency.json").read_text())
    e2e, age = latency["end_to_end_ms"], latency.get("prior_age_frames", {})
    row = {
        "source": name, "mode": mode + (" + mp4" if mp4 else ""), "sam2_nice": sam2.get("nice", 0),
        "frames_decoded": latency["frames_decoded"],
        "fps_processed": latency["throughput_fps"], "frames_dropped": latency["frames_dropped"],
        "e2e_p50_ms": e2e.get("p50"), "e2e_p99_ms": e2e.get("p99"),
        "prior_age_frames_p50": age.get("p50"), "prior_age_frames_p99": age.get("p99"),
        "prior_age_ms_p50": latency.get("prior_age_ms", {}).get("p50"),
        "per_operator_p50_ms": {op: s["p50"] for op, s in latency["per_operator_ms"].items()},
    }
    row["goals_met"] = (row["fps_processed"] or 0) >= GOALS["fps_processed"] and \
        row["frames_dropped"] <= GOALS["frames_dropped"] and (row["e2e_p99_ms"] or 1e9) <= GOALS["e2e_p99_ms"]
    log.info("%-16s %-13s nice %2d %5.1f fps, %4d dropped, e2e p50 %6.1f p99 %6.1f ms, prior age p50 %s frames",
             name, row["mode"], row["sam2_nice"], row["fps_processed"] or 0, row["frames_dropped"],
             row["e2e_p50_ms"] or -1, row["e2e_p99_ms"] or -1, row["prior_age_frames_p50"])
    return row


def refiner_onnx(folder: Path) -> tuple[Path, str]:
    """The demo's refiner when `surgseg demo` has run here, else a random-weight one of the same size."""
    if DEMO_REFINER.is_file():
        return DEMO_REFINER, "demo refiner"
    from benchmarks.refiner_latency import export_random_refiner

    h, w = read_yaml(graph_path("replay_fast"))["operators"]["refiner"]["size"]
    artifact = export_random_refiner((h, w), folder, "small")
    return artifact.metadata_path.with_name("refiner.onnx"), "random-weight 'small' refiner"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="per run, at 30 fps")
    parser.add_argument("--modes", nargs="+", default=["sync", "async"])
    parser.add_argument("--sam2-threads", type=int, default=0, help="runtime.threads (0: the library's default)")
    parser.add_argument("--sam2-backend", default="torch", choices=("torch", "onnxruntime"))
    parser.add_argument("--sam2-precision", default="fp32", choices=("fp32", "int8"))
    parser.add_argument("--sam2-nice", type=int, nargs="+", default=[10],
                        help="runtime.nice values to compare (async rows; each source runs them back to back)")
    parser.add_argument("--no-mp4", dest="mp4", action="store_false", help="skip the async + mp4 rows")
    parser.add_argument("--name", default="realtime_cpu", help="results file name")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    frames = int(args.seconds * FPS)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        refiner, refiner_note = refiner_onnx(Path(tmp))
        sam2 = {"threads": args.sam2_threads, "backend": args.sam2_backend, "precision": args.sam2_precision}
        if args.sam2_backend != "torch":  # the random-weight SAM 2 tiny at 256 px, exported once (about a minute)
            from benchmarks.sam2_backends import exported_folder
            from surgseg.engines.sam2.config import ModelConfig

            sam2["exported"] = str(exported_folder(Path(tmp) / "sam2", ModelConfig(image_size=256)))
        for name, source in sources(Path(tmp), frames).items():
            for mode in args.modes:
                for nice in (args.sam2_nice if mode == "async" else [0]):
                    rows.append(measure(name, source, mode, refiner, frames, False, {**sam2, "nice": nice}))
            for nice in args.sam2_nice if "async" in args.modes and args.mp4 else []:
                rows.append(measure(name, source, "async", refiner, frames, True, {**sam2, "nice": nice}))
    path = write_result(args.name, {
        "setup": {"source": f"{SIZE[0]}x{SIZE[1]} live at {FPS} fps (drop-oldest queue)", "frames_per_run": frames,
                  "sam2": "sam2.1_hiera_tiny, random weights, 256 px, seeded by a box, never released",
                  "refiner": refiner_note, "async": "warp: flow",
                  "sam2_runtime": {key: value for key, value in sam2.items() if key != "exported"}, "goals": GOALS},
        "rows": rows})
    log.info("wrote %s", path)


if __name__ == "__main__":
    main()
