"""Seed media for the fuzzing campaign (small videos and pictures of every awkward kind) and byte-level mutations.

Seeds are made here with PyAV and Pillow, so the campaign needs no data set: H.264 (plain with the index up
front, fragmented as surgseg writes it, 10-bit), MPEG-4 in AVI, FFV1 grey / odd-sized / 1×1 / 4097×4097 in MKV,
PNG-in-MOV with alpha, variable frame rate; PNG in RGB, grey, grey+alpha, RGBA, palette, 16-bit, 1×1, odd widths
and 4097×4097, JPEG, BMP and 16-bit TIFF; masks as 0/255, class ids, palette, colour and 16-bit.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

BIG = 4097


@dataclass(frozen=True)
class VideoSeed:
    name: str
    codec: str
    pix_fmt: str
    size: tuple[int, int]  # (width, height)
    frames: int
    options: dict[str, str] | None = None
    vfr: bool = False


VIDEO_SEEDS = (
    VideoSeed("h264_faststart.mp4", "libx264", "yuv420p", (64, 48), 16, {"movflags": "faststart"}),
    VideoSeed("h264_plain.mov", "libx264", "yuv420p", (64, 48), 12),
    VideoSeed("h264_10bit.mp4", "libx264", "yuv420p10le", (64, 48), 10, {"movflags": "faststart"}),
    VideoSeed("mpeg4.avi", "mpeg4", "yuv420p", (64, 48), 12),
    VideoSeed("ffv1_grey.mkv", "ffv1", "gray", (64, 48), 8),
    VideoSeed("ffv1_odd.mkv", "ffv1", "yuv444p", (63, 47), 8),
    VideoSeed("ffv1_1x1.mkv", "ffv1", "yuv444p", (1, 1), 6),
    VideoSeed("png_rgba.mov", "png", "rgba", (64, 48), 6),
    VideoSeed("h264_vfr.mkv", "libx264", "yuv420p", (64, 48), 14, vfr=True),
    VideoSeed("ffv1_4097.mkv", "ffv1", "gray", (BIG, BIG), 1),
)
FRAGMENTED_SEED = "h264_fragmented.mp4"
EMPTY_VIDEO = "zero.mp4"
BIG_SEEDS = ("ffv1_4097.mkv", "big_4097.png")


def write_video(folder: Path, seed: VideoSeed) -> Path:
    """One seed video: moving noise over a gradient (so H.264 has real motion to code)."""
    import av

    path = folder / seed.name
    width, height = seed.size
    rng = np.random.default_rng(len(seed.name))
    with av.open(str(path), "w", options=seed.options or {}) as container:
        stream = container.add_stream(seed.codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, seed.pix_fmt
        if seed.vfr:
            stream.time_base = Fraction(1, 1000)
        clock = 0
        for index in range(seed.frames):
            frame = _picture(rng, height, width, index)
            video = av.VideoFrame.from_ndarray(frame, format="rgb24")
            if seed.vfr:
                clock += int(rng.integers(10, 120))
                video.pts = clock
                video.time_base = Fraction(1, 1000)
            for packet in stream.encode(video):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def _picture(rng: np.random.Generator, height: int, width: int, index: int) -> np.ndarray:
    if height * width > 1_000_000:
        return np.full((height, width, 3), (index * 40) % 256, np.uint8)
    ramp = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
    noise = rng.integers(0, 60, (height, width, 3)).astype(np.float32)
    return np.clip(ramp + noise + index * 7, 0, 255).astype(np.uint8)


def write_pictures(folder: Path, big: bool = True) -> dict[str, Path]:
    """Seed pictures and masks, by name."""
    from PIL import Image

    rng = np.random.default_rng(0)
    rgb = _picture(rng, 48, 64, 0)
    mask = np.zeros((48, 64), np.uint8)
    mask[12:36, 16:40] = 1
    colour = np.zeros((48, 64, 3), np.uint8)
    colour[mask == 1] = (255, 0, 0)
    palette_mask = Image.frombytes("P", (64, 48), mask.tobytes())
    palette_mask.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    pictures = {
        "rgb.png": Image.fromarray(rgb),
        "grey.png": Image.fromarray(rgb[..., 0]),
        "grey_alpha.png": Image.fromarray(np.ascontiguousarray(rgb[..., :2])),
        "rgba.png": Image.fromarray(np.dstack([rgb, rgb[..., :1]])),
        "palette.png": Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=16),
        "sixteen.png": _sixteen_bit(rgb[..., 0].astype(np.uint16) * 257),
        "one.png": Image.fromarray(rgb[:1, :1]),
        "odd.png": Image.fromarray(rgb[:47, :63]),
        "photo.jpg": Image.fromarray(rgb),
        "bitmap.bmp": Image.fromarray(rgb),
        "sixteen.tif": _sixteen_bit(rgb[..., 0].astype(np.uint16) * 257),
        "mask_binary.png": Image.fromarray(mask * 255),
        "mask_ids.png": Image.fromarray(mask),
        "mask_palette.png": palette_mask,
        "mask_colour.png": Image.fromarray(colour),
        "mask_sixteen.png": _sixteen_bit(mask.astype(np.uint16) * 65535),
        "mask_noisy.jpg": Image.fromarray(mask * 255),
    }
    if big:
        pictures["big_4097.png"] = Image.new("RGB", (BIG, BIG), (90, 30, 30))
    paths = {}
    for name, picture in pictures.items():
        paths[name] = folder / name
        picture.save(paths[name])
    return paths


def claimed_size_png(width: int, height: int) -> bytes:
    """A PNG whose valid header claims width × height but whose pixel data is one empty row (a decompression bomb
    to a reader that trusts the header)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * (width + 1)))
            + chunk(b"IEND", b""))


def _sixteen_bit(array: np.ndarray):
    from PIL import Image

    return Image.frombytes("I;16", (array.shape[1], array.shape[0]), array.astype("<u2").tobytes())


def write_seeds(folder: Path, big: bool = True) -> dict[str, Path]:
    """Every seed file (videos and pictures) in `folder`, by name; `big=False` leaves out the 4097² ones."""
    from surgseg.engines.video.io import VideoWriter

    folder.mkdir(parents=True, exist_ok=True)
    seeds = {seed.name: write_video(folder, seed) for seed in VIDEO_SEEDS if big or seed.name not in BIG_SEEDS}
    with VideoWriter(folder / FRAGMENTED_SEED, fps=25) as writer:
        rng = np.random.default_rng(1)
        for index in range(20):
            writer.write(_picture(rng, 48, 64, index))
    seeds[FRAGMENTED_SEED] = folder / FRAGMENTED_SEED
    (folder / EMPTY_VIDEO).write_bytes(b"")
    seeds[EMPTY_VIDEO] = folder / EMPTY_VIDEO
    seeds.update(write_pictures(folder, big))
    for name, side in (("claims_30000.png", 30000), ("claims_12000.png", 12000)):
        seeds[name] = folder / name
        seeds[name].write_bytes(claimed_size_png(side, side))
    return seeds


MUTATIONS = ("none", "bitflip", "bitflip_header", "truncate", "header", "zero", "splice", "garbage_tail")


def mutate(data: bytes, how: str, rng: random.Random) -> bytes:
    """`data` damaged one way: bit flips (anywhere or in the first 256 bytes), cut short, header overwritten,
    emptied, a chunk repeated elsewhere, or garbage appended."""
    if how == "none" or not data:
        return data
    buffer = bytearray(data)
    if how in ("bitflip", "bitflip_header"):
        span = min(len(buffer), 256) if how == "bitflip_header" else len(buffer)
        for _ in range(rng.choice((1, 2, 8, 32))):
            position = rng.randrange(span)
            buffer[position] ^= 1 << rng.randrange(8)
        return bytes(buffer)
    if how == "truncate":
        return bytes(buffer[: rng.randrange(len(buffer))])
    if how == "header":
        length = min(len(buffer), rng.choice((4, 16, 64, 512)))
        filler = bytes(rng.randrange(256) for _ in range(length)) if rng.random() < 0.5 else bytes(length)
        return filler + bytes(buffer[length:])
    if how == "zero":
        return b""
    if how == "splice":
        start = rng.randrange(len(buffer))
        chunk = buffer[start:start + rng.randrange(1, 2048)]
        at = rng.randrange(len(buffer))
        return bytes(buffer[:at] + chunk + buffer[at:])
    if how == "garbage_tail":
        return bytes(buffer) + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 4096)))
    raise ValueError(f"unknown mutation {how}")
