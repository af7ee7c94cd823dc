"""False positives of the demo refiner on real endoscopic frames without instruments (issue 20).

The 612 CVC-ClinicDB frames (../shared/data/cvc-clinicdb: colonoscopy, no surgical instrument in view) go through
the demo refiner (`out/demo/refiner`, made by `surgseg demo`) image only, with an empty prior, the way the runtime
does it: the field of view is detected (`surgseg.engines.fov.detect_fov`), the frame is cropped to its bounding box,
letterboxed to the refiner's input and the mask is brought back to the crop. Every pixel predicted as instrument
inside the FOV is a false positive: `mean_fp_fraction` is their share of the FOV's pixels averaged over frames,
`share_frames_over_1pct` the share of frames where it exceeds 1 %. Goal: ≤ 0.002 and ≤ 0.05.
`--before DIR` also scores another refiner artefact (e.g. a copy of the previous demo refiner) the same way;
`--no-fov` scores the whole frame without the crop (what the runtime did before the FOV existed).
Writes only numbers: benchmarks/results/real_frames_fp.json.

    .venv/bin/python -m benchmarks.real_frames_fp --before /tmp/old_refiner
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import write_result

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cvc-clinicdb"
REPO = Path(__file__).resolve().parents[1]
GOAL = {"mean_fp_fraction": 0.002, "share_frames_over_1pct": 0.05}
log = logging.getLogger("real_frames_fp")


def frame_paths(data: Path) -> list[Path]:
    """The dataset's frames in frame-number order."""
    return sorted((data / "images").glob("*.png"), key=lambda p: int(p.stem))


def fp_fraction(refiner: Any, frame: np.ndarray, use_fov: bool) -> float:
    """Share of the FOV's pixels the refiner marks as instrument (image only, empty prior)."""
    import cv2

    from surgseg.engines.letterbox import unletterbox
    from surgseg.engines.preprocess import empty_prior, model_input

    inside = np.ones(frame.shape[:2], bool)
    if use_fov:
        from surgseg.engines.fov import crop_to_fov, detect_fov

        fov = detect_fov(frame)
        inside = crop_to_fov(fov.mask(*frame.shape[:2]), fov)
        frame = crop_to_fov(frame, fov)
    size = tuple(refiner.artifact.image_shape()[2:])
    image, geometry = model_input(frame, size)
    logits = refiner.run(image, empty_prior(refiner.artifact.num_classes, size, image))[0]
    mask = unletterbox(logits.argmax(axis=0).astype(np.uint8), geometry, interpolation=cv2.INTER_NEAREST)
    total = int(np.count_nonzero(inside))
    return float(np.count_nonzero((mask > 0) & inside)) / total if total else 0.0


def score(artifact: Path, frames: list[Path], use_fov: bool, threads: int) -> dict[str, Any]:
    """FP statistics of one refiner artefact over the frames."""
    import cv2

    from surgseg.engines.refiner.runtime import RefinerRuntime, RuntimeConfig

    refiner = RefinerRuntime(artifact, RuntimeConfig(backend="onnxruntime", device="cpu", threads=threads))
    started = time.perf_counter()
    fractions = np.array([fp_fraction(refiner, cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB), use_fov)
                          for p in frames])
    return {
        "artifact": str(artifact.resolve().relative_to(REPO)) if artifact.resolve().is_relative_to(REPO) else
        str(artifact),
        "frames": len(fractions),
        "mean_fp_fraction": float(fractions.mean()),
        "median_fp_fraction": float(np.median(fractions)),
        "p95_fp_fraction": float(np.percentile(fractions, 95)),
        "max_fp_fraction": float(fractions.max()),
        "share_frames_over_1pct": float(np.mean(fractions > 0.01)),
        "frames_over_1pct": int(np.count_nonzero(fractions > 0.01)),
        "seconds": round(time.perf_counter() - started, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--artifact", type=Path, default=REPO / "out" / "demo" / "refiner")
    parser.add_argument("--before", type=Path, default=None, help="another refiner artefact to score the same way")
    parser.add_argument("--no-fov", dest="fov", action="store_false", help="score whole frames, no FOV crop")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--note", default="", help="what the two artefacts are (stored with the result)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    if not (args.data / "images").is_dir():
        log.warning("ClinicDB not found at %s: nothing to do", args.data)
        return 0
    if not (args.artifact / "refiner.json").is_file():
        log.error("%s: no refiner artefact (run `surgseg demo` first)", args.artifact)
        return 1
    frames = frame_paths(args.data)
    after = score(args.artifact, frames, args.fov, args.threads)
    payload: dict[str, Any] = {
        "dataset": f"CVC-ClinicDB ({len(frames)} frames, colonoscopy, no instrument in view)",
        "input": "image only (empty prior)",
        "fov_crop": args.fov,
        "note": args.note,
        "goal": GOAL,
        "after": after,
        "passed": all(after[key] <= limit for key, limit in GOAL.items()),
    }
    if args.before is not None:
        payload["before"] = score(args.before, frames, args.fov, args.threads)
    path = write_result("real_frames_fp", payload)
    for name in ("before", "after"):
        if name in payload:
            s = payload[name]
            print(f"{name}: mean FP {s['mean_fp_fraction']:.4f} of FOV pixels, frames over 1 % "
                  f"{s['frames_over_1pct']}/{s['frames']} ({s['share_frames_over_1pct']:.3f})")
    if "before" in payload and payload["after"]["mean_fp_fraction"] > 0:
        ratio = payload["before"]["mean_fp_fraction"] / payload["after"]["mean_fp_fraction"]
        print(f"before/after mean FP ratio {ratio:.1f}x")
    print(f"goal ≤ {GOAL['mean_fp_fraction']} and ≤ {GOAL['share_frames_over_1pct']}: "
          f"{'passed' if payload['passed'] else 'NOT met'} → {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
