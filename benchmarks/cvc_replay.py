"""CVC-ClinicDB test sequences through replay_fast.yaml as image folders, seeded from each sequence's first GT mask.

The refiner is the one `benchmarks/refiner_cvc.py` trained (same split: whole `sequence_estimate` groups),
exported here to ONNX. Prints Dice/IoU/Boundary F per sequence and overall for each point of `--grid` (one point
by default); with several points it is the README's latency/accuracy sweep and writes the Pareto plot too.
Only metrics leave the work folder: benchmarks/results/cvc_replay.json (and docs/ plots with --plot).
"""

from __future__ import annotations

import argparse
import logging
import shutil
from pathlib import Path

from benchmarks.common import write_result
from benchmarks.refiner_cvc import DATA, write_clinicdb_index
from surgseg.app.sweep import run_sweep
from surgseg.engines.refiner.artifact import RefinerArtifact
from surgseg.graphs import graph_path
from surgseg.training.export import ExportConfig, export_refiner

log = logging.getLogger("cvc_replay")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=Path("/tmp/refiner_cvc/run/best.pt"))
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--work", type=Path, default=Path("/tmp/cvc_replay"))
    parser.add_argument("--grid", nargs="+", default=["size=256"])
    parser.add_argument("--name", default="cvc_replay")
    parser.add_argument("--plot", type=Path, default=None, help="copy the Pareto plot here (e.g. docs/pareto.png)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    if not (args.data / "frames.csv").is_file():
        log.error("ClinicDB not found at %s: nothing to do", args.data)
        return 0
    args.work.mkdir(parents=True, exist_ok=True)
    index = args.work / "index.jsonl"
    write_clinicdb_index(args.data, index)
    export_refiner(ExportConfig(checkpoint=args.checkpoint, out=args.work / "models", val_frames=2))
    artifact = RefinerArtifact.load(args.work / "models")
    height, width = artifact.input_size
    overrides = [f"operators.refiner.artifact={artifact.file('onnx')}", f"operators.refiner.size=[{height}, {width}]",
                 f"operators.preproc.size=[{height}, {width}]", "operators.prior.seed.from_gt=true", "device=cpu"]
    rows = run_sweep(graph_path("replay_fast"), index, args.grid, args.work / "sweep", overrides, split="test")
    for row in rows:
        log.info("%s: Dice %.3f IoU %.3f BF %.3f, p50 %.0f ms%s", row["label"], row["metrics"]["dice"],
                 row["metrics"]["iou"], row["metrics"]["boundary_f"], row["latency_ms"]["p50"],
                 " (Pareto)" if row["pareto"] else "")
        for clip, scores in row["clips"].items():
            log.info("    %s (%d frames): Dice %.3f", clip, scores["frames"], scores["dice"])
    if args.plot:
        shutil.copyfile(args.work / "sweep" / "pareto.png", args.plot)
    payload = {"checkpoint": str(args.checkpoint), "refiner_input_size": [height, width], "graph": "replay_fast",
               "sam2_weights": "random-init (no checkpoint on this machine)", "configurations": rows,
               "pareto_table": (args.work / "sweep" / "pareto.md").read_text()}
    log.info("wrote %s", write_result(args.name, payload))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
