"""Debug snapshots: every N-th frame's arrays (input, prior, refined logits, mask) and SAM 2 memory state as one
`.npz` per frame plus an `index.jsonl` line, for looking into a failure after the fact."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from surgseg.engines.array_backend import to_numpy
from surgseg.engines.atomic import atomic_path

ARRAY_KEYS = ("frame", "image", "prior", "logits", "mask", "gt_mask")


def write_snapshot(folder: Path, message: dict[str, Any]) -> Path:
    """Save the message's arrays to `<folder>/frame_<index>.npz` and append its facts to `<folder>/index.jsonl`."""
    folder.mkdir(parents=True, exist_ok=True)
    meta = message.get("meta", {})
    index = int(meta.get("frame_index", 0))
    path = folder / f"frame_{index:06d}.npz"
    arrays = {key: to_numpy(message[key]) for key in ARRAY_KEYS if message.get(key) is not None}
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez_compressed(tmp, **arrays)
    sam2 = meta.get("sam2", {})
    line = {"frame_index": index, "file": path.name, "arrays": {k: list(v.shape) for k, v in arrays.items()},
            "object_scores": sam2.get("object_scores"), "absent": sam2.get("absent"),
            "memory": {str(k): v for k, v in sam2.get("memory", {}).items()},
            "confidence": meta.get("confidence"), "timings_ms": meta.get("timings_ms")}
    with open(folder / "index.jsonl", "a") as handle:
        handle.write(json.dumps(line, default=float) + "\n")
    return path
