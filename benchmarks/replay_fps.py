"""End-to-end throughput and latency of replay_fast.yaml on a synthetic clip at several SAM 2 input sizes."""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path

from surgseg.app.graph_spec import read_yaml, validate
from surgseg.app.runtime import run_graph
from surgseg.graphs import graph_path

log = logging.getLogger("replay_fps")


def measure(image_size: int, frames: int, refiner_onnx: Path, out: Path) -> dict:
    raw = read_yaml(graph_path("replay_fast"))
    model_h, model_w = raw["operators"]["preproc"]["size"]
    raw["device"] = "cpu"
    raw["operators"]["source"] = {"type": "SyntheticSource", "frames": frames, "size": [model_w, model_h], "seed": 2}
    # the random refiner's mask must not release SAM 2: the run measures the full chain on every frame
    prior = raw["operators"]["prior"]
    prior["model"]["image_size"] = image_size
    prior["seeding"] = {**prior["seeding"], "release_after": 0}
    raw["operators"]["refiner"]["artifact"] = str(refiner_onnx)
    raw["operators"]["metrics"]["path"] = str(out / "metrics.json")
    raw["operators"]["latency"].update(path=str(out / "latency.json"), warmup=2)
    run_graph(validate(raw, graph_path("replay_fast")))
    latency = json.loads((out / "latency.json").read_text())
    return {"image_size": image_size, "frames": frames, "fps": latency["throughput_fps"],
            "end_to_end_ms": latency["end_to_end_ms"],
            "per_operator_p50_ms": {name: stats["p50"] for name, stats in latency["per_operator_ms"].items()}}


def main() -> None:
    from benchmarks.common import write_result
    from benchmarks.refiner_latency import export_random_refiner

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--frames", type=int, default=40)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model_size = tuple(read_yaml(graph_path("replay_fast"))["operators"]["refiner"]["size"])
        artifact = export_random_refiner(model_size, folder, "small")
        rows = [measure(size, args.frames, artifact.file("onnx"), folder / str(size)) for size in args.sizes]
    for row in rows:
        log.info("SAM 2 at %d px: %.2f fps end-to-end, p50 %.0f ms, p95 %.0f ms", row["image_size"], row["fps"],
                 row["end_to_end_ms"]["p50"], row["end_to_end_ms"]["p95"])
    if len(rows) > 1:
        log.info("fps ratio %d px / %d px: %.2f", rows[-1]["image_size"], rows[0]["image_size"],
                 rows[-1]["fps"] / rows[0]["fps"])
    log.info("wrote %s", write_result("replay_fps", {"graph": "replay_fast", "rows": rows}))


if __name__ == "__main__":
    main()
