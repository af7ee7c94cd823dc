"""Leak-free train/val/test splits: whole groups (videos, or clusters of near-duplicate standalone frames) per split.

Groups come from `video_id`; a row without one is a standalone frame, grouped with its near-duplicates (copies,
re-encodes, slight crops) by a 64-bit difference hash. Among seeded random greedy assignments, the one closest to
the target fractions of frames, with every class present in every split where possible, wins.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from surgseg.engines.errors import InputError

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
EMPTY_SPLIT_PENALTY = 10.0
MISSING_CLASS_PENALTY = 0.05


@dataclass(frozen=True)
class SplitConfig:
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 0
    near_duplicate_bits: int = 10  # max Hamming distance of the 64-bit hashes for "same frame"
    trials: int = 512  # fewer with many groups: at most ~50k greedy steps in all

    def __post_init__(self) -> None:
        if len(self.fractions) != 3 or min(self.fractions) < 0 or abs(sum(self.fractions) - 1.0) > 1e-6:
            raise InputError(f"split fractions: {self.fractions} (three values >= 0 summing to 1)")


def split_rows(rows: list[dict[str, Any]], config: SplitConfig) -> list[dict[str, Any]]:
    """Rows with `group` and `split` set; the input rows are not modified."""
    if not rows:
        raise InputError("index: no rows to split")
    groups = group_keys(rows, config.near_duplicate_bits)
    order = sorted(set(groups))
    sizes = np.array([groups.count(g) for g in order], np.int64)
    presence = _class_presence(rows, groups, order)
    assignment = assign_groups(sizes, presence, config)
    split_of = {g: SPLITS[s] for g, s in zip(order, assignment)}
    return [{**row, "group": g, "split": split_of[g]} for row, g in zip(rows, groups)]


def group_keys(rows: list[dict[str, Any]], max_bits: int) -> list[str]:
    """`video:<id>` for rows with a video id; `frame:<first stem>` for each near-duplicate cluster of the others."""
    keys = [f"video:{row['video_id']}" if row.get("video_id") is not None else "" for row in rows]
    loose = [i for i, key in enumerate(keys) if not key]
    if loose:
        hashes = np.array([image_hash(rows[i]["image_path"]) for i in loose], np.uint64)
        clusters = near_duplicate_clusters(hashes, max_bits)
        names = {}
        for i, cluster in zip(loose, clusters):
            names.setdefault(cluster, f"frame:{_stem(rows[i]['image_path'])}")
            keys[i] = names[cluster]
        log.info("%d standalone frames in %d near-duplicate groups", len(loose), len(names))
    return keys


def image_hash(path: str) -> int:
    """64-bit difference hash: signs of horizontal gradients of a 9x8 grey thumbnail."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise InputError(f"{path}: unreadable image")
    small = cv2.resize(image, (9, 8), interpolation=cv2.INTER_AREA).astype(np.int16)
    bits = (small[:, 1:] > small[:, :-1]).ravel()
    return int(np.packbits(bits).view(">u8")[0])


def near_duplicate_clusters(hashes: np.ndarray, max_bits: int) -> list[int]:
    """Cluster id per hash: connected components of 'Hamming distance <= max_bits' (union-find)."""
    count = len(hashes)
    parent = list(range(count))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    as_bytes = hashes.astype(">u8").view(np.uint8).reshape(count, 8)
    for i in range(count - 1):
        distance = np.unpackbits(as_bytes[i + 1 :] ^ as_bytes[i], axis=1).sum(axis=1)
        for j in np.nonzero(distance <= max_bits)[0]:
            parent[root(i + 1 + int(j))] = root(i)
    return [root(i) for i in range(count)]


def assign_groups(sizes: np.ndarray, presence: np.ndarray, config: SplitConfig) -> np.ndarray:
    """Split index per group (sizes: frames per group; presence: groups x classes frame counts)."""
    total = float(sizes.sum())
    targets = np.array(config.fractions) * total
    best, best_score = None, np.inf
    for trial in range(min(config.trials, max(16, 50_000 // max(1, len(sizes))))):
        rng = np.random.default_rng([config.seed, trial])
        order = np.argsort(-sizes, kind="stable") if trial == 0 else rng.permutation(len(sizes))
        assignment = _greedy(order, sizes, targets)
        score = _score(assignment, sizes, presence, targets, total)
        if score < best_score - 1e-12:
            best, best_score = assignment, score
    return best


def leaked_groups(rows: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Groups (video ids, or `group` for standalone frames) found in more than one split."""
    splits: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        key = row.get("group") or f"video:{row.get('video_id')}"
        splits[key].add(row["split"])
    return {key: found for key, found in splits.items() if len(found) > 1}


def split_summary(rows: list[dict[str, Any]], num_classes: int) -> list[dict[str, Any]]:
    """Per split: frames, share of frames, groups, and frames containing each foreground class."""
    summary = []
    for name in SPLITS:
        members = [row for row in rows if row.get("split") == name]
        summary.append({
            "split": name,
            "frames": len(members),
            "share": len(members) / max(1, len(rows)),
            "groups": len({row.get("group") for row in members}),
            "class_frames": [
                sum(c in row.get("classes_present", []) for row in members) for c in range(1, num_classes)
            ],
        })
    return summary


def split_table(rows: list[dict[str, Any]], class_names: list[str]):
    """A rich Table of `split_summary`."""
    from rich.table import Table

    table = Table(title="dataset split")
    for column in ("split", "frames", "share", "groups", *(f"frames with {n}" for n in class_names[1:])):
        table.add_column(column, justify="left" if column == "split" else "right")
    for entry in split_summary(rows, len(class_names)):
        table.add_row(entry["split"], str(entry["frames"]), f"{entry['share']:.1%}", str(entry["groups"]),
                      *(str(n) for n in entry["class_frames"]))
    return table


def _greedy(order: np.ndarray, sizes: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Each group, in `order`, to the split furthest below its target (relative to the target)."""
    counts = np.zeros(3)
    assignment = np.zeros(len(sizes), np.int64)
    for g in order:
        deficit = np.where(targets > 0, (targets - counts) / np.maximum(targets, 1e-9), -np.inf)
        split = int(np.argmax(deficit))
        assignment[g] = split
        counts[split] += sizes[g]
    return assignment


def _score(assignment: np.ndarray, sizes: np.ndarray, presence: np.ndarray, targets: np.ndarray, total: float) -> float:
    counts = np.bincount(assignment, weights=sizes, minlength=3)
    score = float((((counts - targets) / total) ** 2).sum())
    wanted = targets > 0
    possible = min(len(sizes), int(wanted.sum()))
    score += EMPTY_SPLIT_PENALTY * max(0, possible - int(((counts > 0) & wanted).sum()))
    if presence.size:
        per_split = np.stack([presence[assignment == s].sum(axis=0) for s in range(3)])
        present = presence.sum(axis=0) > 0
        score += MISSING_CLASS_PENALTY * int(((per_split[wanted] == 0) & present).sum())
    return score


def _class_presence(rows: list[dict[str, Any]], groups: list[str], order: list[str]) -> np.ndarray:
    classes = sorted({c for row in rows for c in row.get("classes_present", [])})
    position = {g: i for i, g in enumerate(order)}
    presence = np.zeros((len(order), len(classes)), np.int64)
    for row, g in zip(rows, groups):
        for c in row.get("classes_present", []):
            presence[position[g], classes.index(c)] += 1
    return presence


def _stem(path: str) -> str:
    return Path(path).stem
