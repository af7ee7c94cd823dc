"""Real-data bar for the refiner on CVC-ClinicDB (../shared/data/cvc-clinicdb): prior vs refined on the test split.

Frames are split by `sequence_estimate` (whole sequences, `training.splits` with seed 0: ~65 / 10 / 25 % of frames
to train / val / test). Priors are simulated from the ground truth with the default (pre-fixed)
`PriorSimSettings` and a fixed seed. The refiner ("small") trains on CPU at 144×192 within a wall-clock budget, with
lr 2e-3 (picked in 6-minute pilots on a validation split: 3e-4 gained +0.017 Dice, 2e-3 +0.045); then the best
checkpoint (by val mean Dice) is scored on the test split at the source resolution (384×288) by `surgseg evaluate`'s
`training.evaluate.evaluate_refiner`, which also writes <work>/evaluate/report.html (worst frames, per video).
Bar: prior mean Dice in [0.70, 0.85]; refined ≥ prior + 0.05 and ≥ 0.85; Boundary F improves.
Writes only metrics: benchmarks/results/refiner_cvc.json (run files go to --work, outside the repo).

    .venv/bin/python -m benchmarks.refiner_cvc --minutes 17 --threads 2
"""

from __future__ import annotations

import argparse
import csv
import logging
import sys
import time
from dataclasses import asdict
from pathlib import Path

from benchmarks.common import write_result
from surgseg.app.report.evaluate import write_evaluate_report
from surgseg.training.dataset_index import write_index
from surgseg.training.evaluate import EvaluateConfig, evaluate_refiner
from surgseg.training.prior_simulator import PriorSimSettings
from surgseg.training.splits import SplitConfig, split_rows
from surgseg.training.train import config_from_dict, train

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cvc-clinicdb"
SPLIT_SEED = 0
SPLIT_FRACTIONS = (0.65, 0.10, 0.25)  # train, val, test shares of frames
PRIOR_SEED = 1234
log = logging.getLogger("refiner_cvc")


def write_clinicdb_index(data: Path, index: Path) -> dict[str, list[str]]:
    """JSONL index of ClinicDB split by whole `sequence_estimate` groups; returns the sequences of each split."""
    with (data / "frames.csv").open() as f:
        frames = sorted(csv.DictReader(f), key=lambda r: int(r["frame"]))
    rows = [{"image_path": str(data / r["image"]), "mask_path": str(data / r["mask"]),
             "video_id": f"seq{int(r['sequence_estimate']):02d}", "frame_id": int(r["frame"]), "classes_present": [1]}
            for r in frames]
    rows = split_rows(rows, SplitConfig(fractions=SPLIT_FRACTIONS, seed=SPLIT_SEED))
    write_index(index, rows)
    return {name: sorted({r["video_id"] for r in rows if r["split"] == name}) for name in ("train", "val", "test")}


def test_scores(checkpoint: Path, index: Path, threads: int, report: Path | None = None) -> dict:
    """Prior and refined scores of the best checkpoint on the test split (`surgseg evaluate`'s computation), and its
    report page when `report` is given."""
    evaluation = evaluate_refiner(EvaluateConfig(model=checkpoint, index=index, split="test", prior="simulate",
                                                 seed=PRIOR_SEED, threads=threads))
    if report is not None:
        write_evaluate_report(report, evaluation.result, evaluation.worst)
    return evaluation.result["scores"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--work", type=Path, default=Path("/tmp/refiner_cvc"))
    parser.add_argument("--minutes", type=float, default=17.0, help="training wall-clock budget")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--size", default="small")
    parser.add_argument("--input-size", type=int, nargs=2, default=[144, 192], metavar=("H", "W"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--lr", type=float, default=2e-3,
                        help="AdamW lr; above the 3e-4 default because the CPU budget allows only a few hundred steps")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    if not (args.data / "frames.csv").is_file():
        log.error("ClinicDB not found at %s: nothing to do", args.data)
        return 0

    index = args.work / "index.jsonl"
    sequences = write_clinicdb_index(args.data, index)
    classes = ["background", "polyp"]
    config = config_from_dict({
        "out_dir": str(args.work / "run"),
        "seed": PRIOR_SEED,
        "threads": args.threads,
        "vis_count": 0,
        "data": {"index": str(index), "classes": classes, "input_size": args.input_size},
        "model": {"size": args.size},
        "optim": {"epochs": args.epochs, "max_minutes": args.minutes, "lr": args.lr, "batch_size": 4,
                  "accumulate": 2},
    })
    started = time.monotonic()
    summary = train(config)
    scores = test_scores(Path(summary["checkpoint"]), index, args.threads, args.work / "evaluate" / "report.html")
    prior, refined = scores["prior"], scores["refined"]
    bar = {
        "prior_dice_in_0.70_0.85": 0.70 <= prior["mean_dice"] <= 0.85,
        "refined_dice_ge_prior_plus_0.05": refined["mean_dice"] >= prior["mean_dice"] + 0.05,
        "refined_dice_ge_0.85": refined["mean_dice"] >= 0.85,
        "boundary_f_improves": refined["mean_boundary_f"] > prior["mean_boundary_f"],
    }
    test = {who: {k: v for k, v in s.items() if k != "per_class"} for who, s in scores.items()}
    payload = {
        "dataset": "CVC-ClinicDB (612 frames, 384x288)",
        "split": {"by": "sequence_estimate", "fractions": SPLIT_FRACTIONS, "seed": SPLIT_SEED, "sequences": sequences,
                  "frames": {k: summary[f"{k}_samples"] for k in ("train", "val")} | {"test": prior["frames"]}},
        "prior_simulator": {"settings": asdict(PriorSimSettings()), "seed": PRIOR_SEED},
        "model": {"size": args.size, "parameters": summary["parameters"], "macs": summary["macs"],
                  "input_size": summary["input_size"]},
        "training": {"epochs": summary["epochs"], "steps": summary["steps"], "elapsed_s": summary["elapsed_s"],
                     "threads": args.threads, "budget_minutes": args.minutes, "lr": args.lr,
                     "best_val_mean_dice": summary["best_val_mean_dice"]},
        "test": test,
        "gain": {k: refined[k] - prior[k] for k in ("mean_dice", "mean_iou", "mean_boundary_f")},
        "bar": bar,
        "passed": all(bar.values()),
        "total_s": round(time.monotonic() - started, 1),
    }
    path = write_result("refiner_cvc", payload)
    print(f"test frames {prior['frames']}: prior Dice {prior['mean_dice']:.3f} IoU {prior['mean_iou']:.3f} "
          f"BF {prior['mean_boundary_f']:.3f} | refined Dice {refined['mean_dice']:.3f} IoU {refined['mean_iou']:.3f} "
          f"BF {refined['mean_boundary_f']:.3f} | gain Dice {payload['gain']['mean_dice']:+.3f} "
          f"({refined['mean_dice'] / prior['mean_dice']:.3f}x) | bar {'passed' if payload['passed'] else 'NOT met'}"
          f" → {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
