"""Picture sequences on disk: PNG/JPG files sorted by the numbers in their names, optionally paired with GT masks.

Frames come out as HxWx3 uint8 RGB (grey and RGBA converted), masks as HxW uint8 class ids (a {0, 255} mask
becomes {0, 1}). A file that does not decode completely is an `InputError` naming it, never a grey frame.
"""

from __future__ import annotations

import logging
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from surgseg.engines.errors import InputError, one_line
from surgseg.engines.rgb import as_rgb

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


@dataclass(frozen=True)
class FramePair:
    image: Path
    mask: Path | None


def natural_key(path: Path) -> tuple:
    """Sort key that orders '2.png' before '10.png' (numbers compared as numbers)."""
    return tuple(int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.stem))


def list_images(folder: str | Path) -> list[Path]:
    """Picture files of a folder in natural order; InputError when the folder is missing or holds none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: no such image folder")
    files = sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES), key=natural_key)
    if not files:
        raise InputError(f"{folder}: no {'/'.join(s[1:] for s in IMAGE_SUFFIXES)} files in the folder")
    return files


def pair_with_masks(images: list[Path], mask_folder: str | Path | None) -> list[FramePair]:
    """Each image with the mask of the same name stem in `mask_folder` (any picture suffix)."""
    if mask_folder is None:
        return [FramePair(image, None) for image in images]
    masks = {p.stem: p for p in list_images(mask_folder)}
    pairs = []
    for image in images:
        if image.stem not in masks:
            raise InputError(f"{image}: no mask named {image.stem}.* in {mask_folder}")
        pairs.append(FramePair(image, masks[image.stem]))
    return pairs


def load_picture(path: str | Path, problem: str = "broken or unreadable picture") -> Image.Image:
    """The fully decoded picture; InputError `<path>: <problem> (why)` when it does not decode or its header claims
    more pixels than Pillow's decompression-bomb limit (refused, not warned about on stderr). Pillow's other warnings
    become one log line naming the file, or the refusal when they say the data is cut short."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as picture:
                picture.load()
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise InputError(f"{path}: {problem} (its header claims more than {Image.MAX_IMAGE_PIXELS} pixels)") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{path}: {problem} ({one_line(exc)})") from None
    for warning in caught:
        if "truncated" in str(warning.message).lower():
            raise InputError(f"{path}: {problem} ({one_line(warning.message)})")
        log.warning("%s: %s", path, one_line(warning.message))
    return picture


def read_image(path: str | Path) -> np.ndarray:
    """HxWx3 uint8 RGB from a PNG/JPG (grey replicated, alpha dropped, palette expanded)."""
    path = Path(path)
    picture = load_picture(path)
    if picture.mode not in ("L", "RGB", "RGBA", "LA"):
        if picture.mode in ("I;16", "I;16B", "I", "F"):
            raise InputError(f"{path}: {picture.mode} pixels (more than 8 bits): convert the frames to 8-bit RGB")
        picture = picture.convert("RGBA" if "transparency" in picture.info else "RGB")
    if picture.mode == "LA":
        picture = picture.convert("L")
    return as_rgb(np.asarray(picture), str(path))


def read_mask(path: str | Path, num_classes: int = 2) -> np.ndarray:
    """HxW uint8 class ids: grey values < num_classes are ids; a binary task also takes 0/255 (threshold 128)."""
    path = Path(path)
    picture = load_picture(path)
    mask = np.asarray(picture.convert("L") if picture.mode != "L" else picture)
    if int(mask.max(initial=0)) < num_classes:
        return np.ascontiguousarray(mask, dtype=np.uint8)
    values = np.unique(mask)
    ambiguous = values[(values >= num_classes) & (values < 128)]
    if num_classes == 2 and ambiguous.size == 0:
        return (mask >= 128).astype(np.uint8)
    unknown = values[values >= num_classes]
    raise InputError(f"{path}: mask values {unknown[:8].tolist()} are not class ids (num_classes={num_classes})")


def read_pair(pair: FramePair, num_classes: int = 2) -> tuple[np.ndarray, np.ndarray | None]:
    """(frame, mask or None); InputError when the mask's size differs from the frame's."""
    frame = read_image(pair.image)
    if pair.mask is None:
        return frame, None
    mask = read_mask(pair.mask, num_classes)
    if mask.shape != frame.shape[:2]:
        raise InputError(f"{pair.mask}: mask is {mask.shape[1]}x{mask.shape[0]}, "
                         f"its image {pair.image.name} is {frame.shape[1]}x{frame.shape[0]}")
    return frame, mask


class ImageSequence:
    """Reads a folder's pictures in order as (frame, mask or None); every frame must keep the first one's size."""

    def __init__(self, folder: str | Path, mask_folder: str | Path | None = None, num_classes: int = 2,
                 start_frame: int = 0, end_frame: int | None = None) -> None:
        self.pairs = pair_with_masks(list_images(folder), mask_folder)[start_frame:end_frame]
        if not self.pairs:
            raise InputError(f"{folder}: no pictures between start_frame {start_frame} and end_frame {end_frame}")
        self.num_classes = num_classes
        self.index = 0
        self._size: tuple[int, ...] | None = None

    def __len__(self) -> int:
        return len(self.pairs)

    def read(self) -> tuple[np.ndarray, np.ndarray | None] | None:
        """The next (frame, mask), or None after the last picture."""
        if self.index >= len(self.pairs):
            return None
        pair = self.pairs[self.index]
        frame, mask = read_pair(pair, self.num_classes)
        self._size = self._size or frame.shape
        if frame.shape != self._size:
            raise InputError(f"{pair.image}: picture is {frame.shape[1]}x{frame.shape[0]}, the sequence started at "
                             f"{self._size[1]}x{self._size[0]}")
        self.index += 1
        return frame, mask
