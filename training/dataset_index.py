"""Dataset index: image/mask pairs by stem, standardised ID masks, video/frame ids, JSONL rows and classes.yaml.

A row: `image_path`, `mask_path`, `video_id` (None for standalone frames), `frame_id` (int or None),
`classes_present` (foreground class ids in the mask), `width`, `height`, and `split` once split. In the file, paths
inside the index's folder are stored relative to it, others absolute; `read_index` returns them absolute.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from surgseg.engines.atomic import atomic_path, atomic_write_text
from surgseg.engines.errors import InputError, one_line
from surgseg.engines.video.image_folder import load_picture
from surgseg.training.masks import ColourMap, load_colour_map, read_mask, standardise_mask

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
PATH_FIELDS = ("image_path", "mask_path")
INDEX_FIELDS = ("image_path", "mask_path", "video_id", "frame_id", "classes_present", "width", "height")
CSV_KEYS = ("image", "stem", "filename", "frame")
TRAILING_NUMBER = re.compile(r"(\d+)$")


@dataclass(frozen=True)
class IndexConfig:
    images: Path
    masks: Path
    out: Path  # the JSONL index; standardised masks go to <out folder>/class_masks/
    num_classes: int = 2
    class_names: tuple[str, ...] = ()
    colour_map: Path | None = None
    id_regex: str | None = None  # named groups `video` and optional `frame`, matched against the stem
    frames_csv: Path | None = None
    csv_group: str = "sequence_estimate"


@dataclass
class IndexReport:
    rows: list[dict[str, Any]]
    unpaired: list[Path]
    changed_pixels: dict[str, int] = field(default_factory=dict)  # mask stem -> pixels snapped
    kinds: Counter = field(default_factory=Counter)


def build_index(config: IndexConfig) -> IndexReport:
    """Pair, check and standardise every image/mask; write the masks, then classes.yaml and the index atomically."""
    out_dir = config.out.parent
    check_writable(out_dir)
    colour_map = load_colour_map(config.colour_map) if config.colour_map else None
    pairs, unpaired = pair_files(config.images, config.masks)
    for path in unpaired:
        log.warning("unpaired: %s", path)
    ids = _id_source(config)
    report = IndexReport(rows=[], unpaired=unpaired)
    from tqdm import tqdm

    for stem, image_path, mask_path in tqdm(pairs, desc="index", unit="pair", disable=len(pairs) < 50):
        row, kind, changed = _index_pair(stem, image_path, mask_path, config, colour_map, ids, out_dir)
        report.rows.append(row)
        report.kinds[kind] += 1
        if changed:
            report.changed_pixels[stem] = changed
            log.info("%s: snapped %d noisy pixels to valid class values", mask_path, changed)
    write_classes(out_dir / "classes.yaml", class_names(config, colour_map))
    write_index(config.out, report.rows)
    return report


def pair_files(images: Path, masks: Path) -> tuple[list[tuple[str, Path, Path]], list[Path]]:
    """(stem, image, mask) for stems present in both folders, sorted naturally; plus every unpaired file."""
    image_files = _by_stem(images)
    mask_files = _by_stem(masks)
    stems = sorted(image_files.keys() & mask_files.keys(), key=natural_key)
    unpaired = sorted(
        [image_files[s] for s in image_files.keys() - mask_files.keys()]
        + [mask_files[s] for s in mask_files.keys() - image_files.keys()]
    )
    if not stems:
        raise InputError(f"{images}: no image/mask pairs with {masks} (pairing is by file stem)")
    return [(s, image_files[s], mask_files[s]) for s in stems], unpaired


def natural_key(text: str) -> tuple:
    """Sort key with numbers compared as numbers: 2 < 10."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text))


def class_names(config: IndexConfig, colour_map: ColourMap | None = None) -> list[str]:
    names = {0: "background"}
    names.update({i + 1: n for i, n in enumerate(config.class_names)} if config.class_names else {})
    if colour_map is not None:
        names.update(colour_map.names)
    return [names.get(i, f"class_{i}") for i in range(config.num_classes)]


def write_classes(path: Path, names: list[str]) -> None:
    payload = {"num_classes": len(names), "classes": {i: name for i, name in enumerate(names)}}
    atomic_write_text(path, yaml.safe_dump(payload, sort_keys=False))


def read_classes(path: str | os.PathLike) -> list[str]:
    """Class names by id from classes.yaml."""
    try:
        payload = yaml.safe_load(Path(path).read_text())
        return [str(payload["classes"][i]) for i in range(int(payload["num_classes"]))]
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: not a classes file ({one_line(exc)})") from None


def write_index(path: str | os.PathLike, rows: Iterable[dict[str, Any]]) -> None:
    """Write rows as JSONL atomically; paths inside the index's folder become relative to it."""
    path = Path(path)
    root = path.parent.resolve()
    lines = [json.dumps(_relative_paths(row, root)) for row in rows]
    with atomic_path(path) as tmp:
        tmp.write_text("".join(line + "\n" for line in lines))


def read_index(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of a JSONL index with absolute paths; InputError naming the file and line when malformed."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise InputError(f"{path}: cannot read the index ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not a UTF-8 text file (byte {exc.start})") from None
    root = path.parent.resolve()
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise InputError(f"{path}:{number}: not a JSON line") from None
        if not isinstance(row, dict) or any(not isinstance(row.get(key), str) or not row[key] for key in PATH_FIELDS):
            raise InputError(f"{path}:{number}: row needs image_path and mask_path (file paths)")
        rows.append({**row, **{key: str(root / row[key]) for key in PATH_FIELDS}})
    if not rows:
        raise InputError(f"{path}: the index has no rows")
    return rows


def classes_present(mask: np.ndarray) -> list[int]:
    """Foreground class ids found in a class-id mask."""
    return [int(c) for c in np.nonzero(np.bincount(mask.ravel(), minlength=1))[0] if c > 0]


def read_image_rgb(path: Path) -> np.ndarray:
    """HxWx3 uint8 RGB, fully decoded so a truncated file is an InputError naming it."""
    return np.asarray(load_picture(path, "unreadable image").convert("RGB"))


def _index_pair(
    stem: str,
    image_path: Path,
    mask_path: Path,
    config: IndexConfig,
    colour_map: ColourMap | None,
    ids: dict[str, tuple[str | None, int | None]] | None,
    out_dir: Path,
) -> tuple[dict[str, Any], str, int]:
    image = read_image_rgb(image_path)
    raw, palette = read_mask(mask_path)
    if raw.shape[:2] != image.shape[:2]:
        raise InputError(
            f"{mask_path}: mask is {raw.shape[1]}x{raw.shape[0]} but image {image_path.name} is "
            f"{image.shape[1]}x{image.shape[0]}"
        )
    standard = standardise_mask(raw, str(mask_path), config.num_classes, colour_map, palette)
    out_mask = out_dir / "class_masks" / f"{stem}.png"
    _write_png(out_mask, standard.mask)
    video_id, frame_id = _video_frame(stem, image_path, config, ids)
    row = {
        "image_path": str(image_path.resolve()),
        "mask_path": str(out_mask.resolve()),
        "video_id": video_id,
        "frame_id": frame_id,
        "classes_present": classes_present(standard.mask),
        "width": int(image.shape[1]),
        "height": int(image.shape[0]),
    }
    return row, standard.kind, standard.changed_pixels


def _video_frame(
    stem: str, image_path: Path, config: IndexConfig, ids: dict[str, tuple[str | None, int | None]] | None
) -> tuple[str | None, int | None]:
    if ids is not None:
        if stem not in ids:
            raise InputError(f"{config.frames_csv}: no row for image {image_path.name}")
        return ids[stem]
    if config.id_regex:
        match = re.fullmatch(config.id_regex, stem)
        if match is None or match.groupdict().get("video") is None:
            raise InputError(f"{image_path}: stem '{stem}' does not match --id-regex {config.id_regex!r}")
        frame = match.groupdict().get("frame")
        return match.group("video"), int(frame) if frame and frame.isdigit() else _trailing_number(stem)
    return None, _trailing_number(stem)


def _id_source(config: IndexConfig) -> dict[str, tuple[str | None, int | None]] | None:
    """stem -> (video_id, frame_id) from the frames CSV, or None when ids come from the filename."""
    if config.id_regex:
        try:
            pattern = re.compile(config.id_regex)
        except re.error as exc:
            raise InputError(f"--id-regex: {exc}") from None
        if "video" not in pattern.groupindex:
            raise InputError("--id-regex: needs a named group (?P<video>...) (and optionally (?P<frame>...))")
    if config.frames_csv is None:
        return None
    try:
        with open(config.frames_csv, newline="") as handle:
            table = list(csv.DictReader(handle))
    except OSError as exc:
        raise InputError(f"{config.frames_csv}: cannot read ({exc.strerror or exc})") from None
    columns = table[0].keys() if table else []
    key = next((c for c in CSV_KEYS if c in columns), None)
    if key is None or config.csv_group not in columns:
        raise InputError(
            f"{config.frames_csv}: needs a key column (one of {', '.join(CSV_KEYS)}) and '{config.csv_group}';"
            f" has {', '.join(columns) or 'no rows'}"
        )
    ids = {}
    for row in table:
        stem = Path(row[key]).stem
        frame = row.get("frame", "")
        ids[stem] = (str(row[config.csv_group]), int(frame) if frame.isdigit() else _trailing_number(stem))
    return ids


def _by_stem(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(f"{folder}: no image files ({', '.join(IMAGE_SUFFIXES)})")
    by_stem: dict[str, Path] = {}
    for path in files:
        if path.stem in by_stem:
            raise InputError(f"{path}: duplicate stem '{path.stem}' (also {by_stem[path.stem].name})")
        by_stem[path.stem] = path
    return by_stem


def check_writable(folder: Path) -> None:
    """Create `folder` if needed and prove a file can be written there; InputError naming it otherwise."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".surgseg-write-probe"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise InputError(f"{folder}: output folder is not writable ({exc.strerror or exc})") from None


def _write_png(path: Path, mask: np.ndarray) -> None:
    import cv2

    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), mask):
            raise InputError(f"{path}: could not write the mask")


def _relative_paths(row: dict[str, Any], root: Path) -> dict[str, Any]:
    out = dict(row)
    for key in PATH_FIELDS:
        path = Path(row[key])
        if path.is_absolute() and path.resolve().is_relative_to(root):
            out[key] = str(path.resolve().relative_to(root))
    return out


def _trailing_number(stem: str) -> int | None:
    match = TRAILING_NUMBER.search(stem)
    return int(match.group(1)) if match else None
