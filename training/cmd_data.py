"""`surgseg data index|split|prompts|synth`: turn a folder of images + masks into an indexed, split dataset."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from surgseg.engines.errors import InputError

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser("data", help="dataset index, splits, prompts, synthetic clips")
    commands = data.add_subparsers(dest="data_command", required=True, metavar="STEP")

    index = commands.add_parser("index", help="pair images and masks, standardise masks, write the JSONL index")
    index.add_argument("--images", type=Path, required=True)
    index.add_argument("--masks", type=Path, required=True)
    index.add_argument("--out", type=Path, default=Path("data/dataset.jsonl"))
    index.add_argument("--num-classes", type=int, default=2, help="including background (default 2)")
    index.add_argument("--class-names", default="", help="foreground names, comma-separated (e.g. polyp)")
    index.add_argument("--colour-map", type=Path, help="YAML: classes: [{id, name, colour: [r, g, b]}]")
    index.add_argument("--id-regex", help="regex on the stem with groups (?P<video>..) and (?P<frame>..)")
    index.add_argument("--frames-csv", type=Path, help="CSV with an image/frame column and a group column")
    index.add_argument("--csv-group", default="sequence_estimate", help="CSV column giving the video id")
    index.set_defaults(handler=run_index)

    split = commands.add_parser("split", help="group-wise train/val/test split, written into the index")
    split.add_argument("--index", type=Path, default=Path("data/dataset.jsonl"))
    split.add_argument("--out", type=Path, help="write here instead of updating --index in place")
    split.add_argument("--seed", type=int, default=0)
    split.add_argument("--fractions", default="0.8,0.1,0.1", help="train,val,test shares of frames")
    split.add_argument("--near-duplicate-bits", type=int, default=10, help="hash distance for near-copies")
    split.set_defaults(handler=run_split)

    prompts = commands.add_parser("prompts", help="prompts/<stem>.prompts.json per image from its mask")
    prompts.add_argument("--index", type=Path, default=Path("data/dataset.jsonl"))
    prompts.add_argument("--out", type=Path, help="folder (default: prompts/ beside the index)")
    prompts.set_defaults(handler=run_prompts)

    synth = commands.add_parser("synth", help="synthetic endoscopy clips with exact ground truth")
    synth.add_argument("--out", type=Path, required=True)
    synth.add_argument("--clips", type=int, default=4)
    synth.add_argument("--frames", type=int, default=48)
    synth.add_argument("--size", default="320x256", help="WxH, even numbers")
    synth.add_argument("--classes", type=int, default=3, choices=(2, 3), help="2: instrument; 3: shaft + tip")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--fps", type=int, default=25)
    synth.add_argument("--domain", type=float, default=0.0,
                       help="share of clips with a footage-like look: field of view with on-screen text, palettes, ...")
    synth.add_argument("--negatives", type=float, default=0.0, help="share of clips without any instrument")
    synth.add_argument("--multi", type=float, default=0.0,
                       help="share of clips with 2-3 instruments that cross and hide one another")
    synth.add_argument("--fov-crop", action="store_true", help="store each clip cut to its detected field of view")
    synth.add_argument("--contact-sheet", type=Path, help="also write a contact sheet PNG of the clips")
    synth.set_defaults(handler=run_synth)


def run_index(args: argparse.Namespace) -> int:
    from surgseg.training.dataset_index import IndexConfig, build_index

    start = time.perf_counter()
    if not 2 <= args.num_classes <= 256:
        raise InputError(f"--num-classes: expected 2..256 (background included), got {args.num_classes}")
    names = tuple(n.strip() for n in args.class_names.split(",") if n.strip())
    if names and len(names) != args.num_classes - 1:
        raise InputError(f"--class-names: {len(names)} names for {args.num_classes - 1} foreground classes")
    config = IndexConfig(
        images=args.images, masks=args.masks, out=args.out, num_classes=args.num_classes, class_names=names,
        colour_map=args.colour_map, id_regex=args.id_regex, frames_csv=args.frames_csv, csv_group=args.csv_group,
    )
    report = build_index(config)
    videos = {row["video_id"] for row in report.rows if row["video_id"] is not None}
    _summary("data index", {
        "pairs": len(report.rows),
        "unpaired files": len(report.unpaired),
        "videos": len(videos) or "none (standalone frames)",
        "mask kinds": ", ".join(f"{k} {n}" for k, n in sorted(report.kinds.items())),
        "masks with snapped pixels": f"{len(report.changed_pixels)} ({sum(report.changed_pixels.values())} px)",
        "index": args.out,
        "seconds": f"{time.perf_counter() - start:.2f}",
    })
    return 0


def run_split(args: argparse.Namespace) -> int:
    from rich.console import Console

    from surgseg.training.dataset_index import read_index, write_index
    from surgseg.training.splits import SplitConfig, leaked_groups, split_rows, split_table

    start = time.perf_counter()
    config = SplitConfig(fractions=_fractions(args.fractions), seed=args.seed,
                         near_duplicate_bits=args.near_duplicate_bits)
    rows = split_rows(read_index(args.index), config)
    leaks = leaked_groups(rows)
    if leaks:
        raise RuntimeError(f"split leaks groups across splits: {sorted(leaks)[:5]}")
    write_index(args.out or args.index, rows)
    Console().print(split_table(rows, _class_names(args.index, rows)))
    _summary("data split", {"index": args.out or args.index, "seed": args.seed,
                            "seconds": f"{time.perf_counter() - start:.2f}"})
    return 0


def run_prompts(args: argparse.Namespace) -> int:
    import cv2
    from tqdm import tqdm

    from surgseg.engines.sam2.prompts import prompts_from_mask, save_prompts
    from surgseg.training.dataset_index import read_index

    start = time.perf_counter()
    rows = read_index(args.index)
    num_classes = len(_class_names(args.index, rows))
    out = args.out or args.index.parent / "prompts"
    components = 0
    for row in tqdm(rows, desc="prompts", unit="mask", disable=len(rows) < 50):
        mask = cv2.imread(row["mask_path"], cv2.IMREAD_UNCHANGED)
        if mask is None or mask.ndim != 2:
            raise InputError(f"{row['mask_path']}: unreadable or not a single-channel class-id mask")
        prompts = prompts_from_mask(mask, num_classes)
        components += sum(len(p) for p in prompts.classes.values())
        save_prompts(out / f"{Path(row['image_path']).stem}.prompts.json", prompts)
    _summary("data prompts", {"files": len(rows), "components": components, "folder": out,
                              "seconds": f"{time.perf_counter() - start:.2f}"})
    return 0


def run_synth(args: argparse.Namespace) -> int:
    from surgseg.training.synth_dataset import SynthDatasetConfig, contact_sheet, save_png, write_synthetic_dataset

    start = time.perf_counter()
    config = SynthDatasetConfig(out=args.out, clips=args.clips, frames=args.frames, size=_size(args.size),
                                num_classes=args.classes, seed=args.seed, fps=args.fps, domain=args.domain,
                                negatives=args.negatives, multi=args.multi, fov_crop=args.fov_crop)
    rows = write_synthetic_dataset(config)
    if args.contact_sheet:
        save_png(args.contact_sheet, contact_sheet([config.clip(i) for i in range(config.clips)]))
    tagged = sum(bool(row["tags"]) for row in rows)
    _summary("data synth", {"clips": args.clips, "frames": len(rows), "frames with tags": tagged,
                            "index": args.out / "dataset.jsonl", "seconds": f"{time.perf_counter() - start:.2f}"})
    return 0


def _class_names(index: Path, rows: list[dict]) -> list[str]:
    from surgseg.training.dataset_index import read_classes

    classes = index.parent / "classes.yaml"
    if classes.is_file():
        return read_classes(classes)
    top = max((max(row.get("classes_present") or [0]) for row in rows), default=0)
    return ["background", *(f"class_{i}" for i in range(1, max(top, 1) + 1))]


def _fractions(text: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise InputError(f"--fractions: {text!r} is not three numbers like 0.8,0.1,0.1") from None
    if len(values) != 3:
        raise InputError(f"--fractions: {text!r} needs three values (train,val,test)")
    return values


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise InputError(f"--size: {text!r} is not WxH like 320x256") from None
    return width, height


def _summary(title: str, facts: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_header=False)
    for key, value in facts.items():
        table.add_row(key, str(value))
    Console().print(table)
