"""Cost of the field-of-view handling per frame, and what it finds on the real ClinicDB frames (issue 20).

Times `detect_fov` on one frame, `FovTracker.update` per frame (detecting every `every` frames, the shipped graphs'
setting), the rim check QA runs per frame (`rim_cover`) and Preproc's `model_input` with and without the crop (the
shipped 128x160 model size), at 720p and at ClinicDB's 384x288, on drawn scope frames (a circle at 720p, an octagon
at 384x288). With ../shared/data present it also runs `detect_fov` on the 612 ClinicDB
frames: the share whose FOV is not the full frame, the shapes found, the mean FOV area fraction (FOV pixels over
frame pixels) and the mean bounding-box area fraction (what the model sees after the crop).
Writes only numbers: benchmarks/results/fov.json.

    .venv/bin/python -m benchmarks.fov
"""

from __future__ import annotations

import collections
import logging
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from benchmarks.common import write_result
from surgseg.engines.fov import FieldOfView, FovTracker, FovTrackerConfig, detect_fov
from surgseg.engines.frame_qa import rim_cover
from surgseg.engines.preprocess import model_input

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cvc-clinicdb" / "images"
EVERY = 15
MODEL_SIZE = (128, 160)
log = logging.getLogger("benchmarks.fov")


def scope_frame(fov: FieldOfView, height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smooth tissue-like texture inside `fov`, a noisy near-black border outside."""
    import cv2

    rng = np.random.default_rng(seed)
    noise = cv2.resize(rng.random((height // 16, width // 16)).astype(np.float32), (width, height))
    tissue = np.stack([70 + 160 * noise, 40 + 90 * noise, 30 + 70 * noise], -1).astype(np.uint8)
    frame = rng.integers(0, 9, (height, width, 3), dtype=np.uint8)
    inside = fov.mask(height, width)
    frame[inside] = tissue[inside]
    return frame


def per_call_ms(fn: Callable[[], Any], repeats: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats * 1000


def timings(name: str, fov: FieldOfView, height: int, width: int, repeats: int = 60) -> dict[str, Any]:
    frame = scope_frame(fov, height, width)
    tracker = FovTracker(FovTrackerConfig(every=EVERY))
    mask = np.zeros((height, width), np.uint8)
    mask[height // 2 :, : width // 3] = 1
    found = detect_fov(frame)
    row = {"frame": [height, width], "drawn": fov.kind, "found": found.kind,
           "detect_ms": round(per_call_ms(lambda: detect_fov(frame), repeats), 3),
           "tracker_update_ms": round(per_call_ms(lambda: tracker.update(frame), repeats * EVERY // 4), 3),
           "rim_check_ms": round(per_call_ms(lambda: rim_cover(mask, found), repeats), 3),
           "model_input_ms": round(per_call_ms(lambda: model_input(frame, MODEL_SIZE), repeats), 3),
           "model_input_cropped_ms": round(per_call_ms(lambda: model_input(frame, MODEL_SIZE, crop=found.bbox),
                                                       repeats), 3)}
    log.info("%s: %s", name, row)
    return row


def clinicdb() -> dict[str, Any] | None:
    import cv2

    paths = sorted(DATA.glob("*.png"), key=lambda p: int(p.stem)) if DATA.is_dir() else []
    if not paths:
        log.info("ClinicDB frames absent (%s): skipped", DATA)
        return None
    kinds: collections.Counter[str] = collections.Counter()
    areas, boxes, spent = [], [], 0.0
    for path in paths:
        frame = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        start = time.perf_counter()
        fov = detect_fov(frame)
        spent += time.perf_counter() - start
        height, width = frame.shape[:2]
        x0, y0, x1, y1 = fov.bbox
        kinds[fov.kind] += 1
        areas.append(fov.area_fraction(height, width))
        boxes.append((x1 - x0) * (y1 - y0) / (height * width))
    return {"frames": len(paths), "share_not_full": round(1 - kinds["full"] / len(paths), 4),
            "kinds": dict(kinds), "mean_fov_area_fraction": round(float(np.mean(areas)), 4),
            "min_fov_area_fraction": round(float(np.min(areas)), 4),
            "mean_bbox_area_fraction": round(float(np.mean(boxes)), 4),
            "detect_ms": round(spent / len(paths) * 1000, 3)}


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    payload = {
        "tracker_every": EVERY,
        "720p": timings("720p", FieldOfView.circle(639.5, 359.5, 340, 720, 1280), 720, 1280),
        "384x288": timings("384x288", FieldOfView.octagon((40, 12, 360, 280), 45), 288, 384),
        "clinicdb": clinicdb(),
    }
    log.info("clinicdb: %s", payload["clinicdb"])
    log.info("wrote %s", write_result("fov", payload))


if __name__ == "__main__":
    main()
