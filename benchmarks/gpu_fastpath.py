"""Before/after of the GPU fast paths, in one short call on a CUDA machine (about 2 minutes on an H200):

- refiner 736×1280, fp16 + CUDA graph: BatchNorm unfused vs folded × NCHW vs channels_last, then `RefinerRuntime`
  (torch backend) as the graph runs it;
- SAM 2 tiny at 512 px, bf16: `forward_image` eager vs replayed from a CUDA graph (`EncoderGraph`), and
  `StreamingSAM2.step` eager vs with `runtime.cuda_graph` (the encoder replayed from a CUDA graph);
- the synthetic source: ms per 1280×720 frame;
- the temporal filter: ms per frame with 736×1280 logits and a 1280×720 source, and its component clean-up alone
  (connected-component labelling, vs cupyx `binary_fill_holes` for the old path's hole filling).

First the repository's CUDA-marked tests (as `gpu_check.py` runs them; `--no-tests` skips them). GPU parts say why
they were skipped on a CPU machine; the CPU parts still run. Wheels come from `.whl/` and
`surgseg` is imported from this tree as in `benchmarks/gpu_check.py`. Writes benchmarks/results/gpu_fastpath.json.

Usage: python benchmarks/gpu_fastpath.py [--frames 100] [--refiner-size 736 1280] [--frame-size 720 1280] [--no-tests]
"""

from __future__ import annotations

import argparse
import itertools
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.gpu_check import (Row, _stats, ensure_importable, guarded, install_wheels,  # noqa: E402
                                  run_cuda_tests)

log = logging.getLogger("gpu_fastpath")

SAM2_SIDE = 512
REFINER_VARIANTS = {  # label: (fold BatchNorm, channels_last)
    "BN unfused, NCHW (before)": (False, False),
    "BN folded, NCHW": (True, False),
    "BN unfused, channels_last": (False, True),
    "BN folded, channels_last (after)": (True, True),
}


def timed(call: Callable[[], object], frames: int, cuda: bool) -> dict[str, float]:
    """Median / p95 / min ms of `frames` calls after a few untimed ones (waiting for the GPU after each)."""
    import torch

    from benchmarks.refiner_latency import time_ms

    return _stats(time_ms(call, frames, max(2, frames // 10), torch.cuda.synchronize if cuda else None))


def row(step: str, stats: dict[str, float], extra: dict[str, Any] | None = None) -> Row:
    return Row(step, "ok", f"{stats['median_ms']:.3f} ms (p95 {stats['p95_ms']:.3f})", "", {**stats, **(extra or {})})


def refiner_rows(size: tuple[int, int], frames: int, cuda: bool) -> list[Row]:
    """The 'small' refiner (random weights) as an exported program in each variant; fp16 + CUDA graph on a GPU,
    fp32 eager on the CPU; max |Δlogit| against the unfused fp32 model."""
    import torch

    from surgseg.engines.refiner.runtime import fold_batchnorm
    from surgseg.engines.sam2.cuda_graph import capture_graph
    from surgseg.training.refiner_net import TinyRefiner, refiner_config

    torch.manual_seed(0)
    model = TinyRefiner(refiner_config("small")).eval()
    image, prior = torch.randn(1, 3, *size), 4 * torch.randn(1, 1, *size)
    with torch.no_grad():
        program = torch.export.export(model, (image, prior))
        reference = model(image, prior)
    device, dtype = ("cuda", torch.float16) if cuda else ("cpu", torch.float32)
    if cuda:
        from torch.export.passes import move_to_device_pass

        program = move_to_device_pass(program, device)
    mode = "fp16 + CUDA graph" if cuda else "CPU fp32 eager"
    title = f"refiner {size[0]}x{size[1]} {mode}"

    def variant(label: str, fold: bool, channels_last: bool) -> Row:
        module = program.module()
        folded = fold_batchnorm(module) if fold else 0
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        module = module.to(dtype).to(memory_format=memory_format)
        inputs = [t.to(device, dtype).contiguous(memory_format=memory_format) for t in (image, prior)]
        if cuda:
            graph, output = capture_graph(module, inputs)
            call = graph.replay
        else:
            def call():
                with torch.inference_mode():
                    return module(*inputs)
            output = call()
        stats = timed(call, frames, cuda)
        diff = float((output.float().cpu() - reference).abs().max())
        return row(f"{title}: {label}", stats, {"batchnorm_folded": folded, "max_abs_logit_diff_vs_fp32": diff})

    rows = []
    for label, (fold, channels_last) in REFINER_VARIANTS.items():
        rows += guarded(f"{title}: {label}", lambda args=(label, fold, channels_last): variant(*args))
    if cuda:
        rows += guarded(f"refiner {size[0]}x{size[1]} RefinerRuntime", lambda: runtime_row(size, frames))
    return rows


def runtime_row(size: tuple[int, int], frames: int) -> Row:
    """`RefinerRuntime` (torch backend, CUDA, fp16, graph) on an exported artefact, inputs already on the GPU."""
    import tempfile

    import torch

    from benchmarks.refiner_latency import export_random_refiner, refiner_call
    from surgseg.engines.refiner.runtime import RefinerRuntime, RuntimeConfig

    with tempfile.TemporaryDirectory() as folder:
        artifact = export_random_refiner(size, Path(folder), "small")
        runtime = RefinerRuntime(artifact, RuntimeConfig(backend="torch", device="cuda"))
        stats = timed(refiner_call(runtime, "cuda"), frames, True)
    torch.cuda.synchronize()
    return row(f"refiner {size[0]}x{size[1]} RefinerRuntime torch CUDA (fp16, graph, folded, channels_last)", stats,
               {"goal_ms": 1.0})


def sam2_rows(frame_size: tuple[int, int], frames: int, cuda: bool, sam2: bool) -> list[Row]:
    """SAM 2 tiny @512 bf16: encoder eager vs CUDA graph, then full streaming steps eager vs graph-installed."""
    names = ["SAM 2 tiny encoder @512 bf16", "SAM 2 tiny StreamingSAM2.step @512 bf16"]
    if not cuda or not sam2:
        reason = "no CUDA device" if not cuda else "sam2 not installed (bring it in .whl/)"
        return [Row(name, "skipped", reason) for name in names]
    import torch

    from surgseg.engines.sam2.config import ModelConfig
    from surgseg.engines.sam2.cuda_graph import EncoderGraph
    from surgseg.engines.sam2.model import build_sam2_model

    model = build_sam2_model(ModelConfig(name="tiny", image_size=SAM2_SIDE), "cuda")
    image = torch.randn(1, 3, SAM2_SIDE, SAM2_SIDE, device="cuda")

    def eager():
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
            return model.forward_image(image)

    def graph_row(clone: bool) -> Row:
        graph = EncoderGraph(model, torch.bfloat16, clone_outputs=clone)
        stats = timed(lambda: graph(image), frames, True)
        diff = float((graph(image)["vision_features"].float() - eager()["vision_features"].float()).abs().max())
        label = "CUDA graph, outputs cloned (after)" if clone else "CUDA graph, static outputs"
        return row(f"{names[0]}: {label}", stats, {"max_abs_diff_vision_features": diff})

    def step_row(install: bool) -> Row:
        label = "encoder CUDA graph installed (after)" if install else "eager (before)"
        return row(f"{names[1]}: {label}", timed(streaming_step(frame_size, install), frames, True))

    rows = guarded(f"{names[0]}: eager", lambda: row(f"{names[0]}: eager (before)", timed(eager, frames, True)))
    for clone in (True, False):
        rows += guarded(f"{names[0]}: graph", lambda clone=clone: graph_row(clone))
    for install in (False, True):
        rows += guarded(f"{names[1]}", lambda install=install: step_row(install))
    return rows


def streaming_step(frame_size: tuple[int, int], install_graph: bool) -> Callable[[], object]:
    """`StreamingSAM2.step` over synthetic frames (preprocessed up front), seeded from the first frame's mask; with
    `install_graph` the engine runs with `runtime.cuda_graph` (the image encoder replayed from a CUDA graph)."""
    from surgseg.engines.sam2.config import ModelConfig, RuntimeConfig, SAM2Config
    from surgseg.engines.sam2.prompts import prompts_from_mask
    from surgseg.engines.sam2.stream import StreamingSAM2
    from surgseg.engines.video.synthetic import SyntheticClipConfig, synthetic_clip

    h, w = frame_size
    clip = list(synthetic_clip(SyntheticClipConfig(size=(w, h), frames=21, num_classes=2, presence=((0, 21),))))
    runtime = RuntimeConfig(precision="bf16", cuda_graph=install_graph)
    engine = StreamingSAM2(SAM2Config(model=ModelConfig(name="tiny", image_size=SAM2_SIDE), runtime=runtime), "cuda")
    images = [engine.preprocess(frame) for frame, _, _ in clip]
    engine.seed(images[0], prompts_from_mask(clip[0][1], 2))
    frames = itertools.cycle(images[1:])
    return lambda: engine.step(next(frames))


def synthetic_row(frame_size: tuple[int, int], frames: int) -> Row:
    """Every frame of a seeded clip with the default random events (smoke, occlusion, glare, fast motion)."""
    from surgseg.engines.video.synthetic import SyntheticClip, SyntheticClipConfig

    h, w = frame_size
    started = time.perf_counter()
    clip = SyntheticClip(SyntheticClipConfig(size=(w, h), frames=frames, num_classes=2, seed=0))
    setup_ms = (time.perf_counter() - started) * 1e3
    index = itertools.count()
    stats = timed(lambda: clip.render(next(index) % frames), frames, False)
    return row(f"synthetic source {w}x{h} per frame", stats, {"setup_ms": setup_ms})


def temporal_rows(frame_size: tuple[int, int], model_size: tuple[int, int], frames: int, cuda: bool,
                  cupy: bool) -> list[Row]:
    """TemporalFilter.update per frame (binary, defaults) on a moving ellipse with specks and holes; on the GPU also
    the component clean-up alone and cupyx `binary_fill_holes` (what the old GPU path used for hole filling)."""
    import numpy as np

    from surgseg.engines.letterbox import letterbox_geometry
    from surgseg.engines.temporal import TemporalFilter, _NumpyOps

    geometry = letterbox_geometry(frame_size, model_size)
    logits = [_ellipse_logits(model_size, shift) for shift in range(8)]
    frame = np.full((*frame_size, 3), 120, np.uint8)
    rows = []
    cpu_filter = TemporalFilter()
    cpu_step = itertools.cycle(logits)
    stats = timed(lambda: cpu_filter.update(next(cpu_step), frame, geometry), frames, False)
    rows.append(row(f"temporal filter CPU {frame_size[1]}x{frame_size[0]} per frame", stats))
    mask = cpu_filter.update(logits[0], frame, geometry).mask
    rows.append(row("temporal clean-up CPU (fill holes + min area)",
                    timed(lambda: _NumpyOps.clean(mask.copy(), 2, True, 64), frames, False)))
    if not cuda:
        return rows + [Row("temporal filter CUDA per frame", "skipped", "no CUDA device")]
    import torch

    device_logits = itertools.cycle([torch.from_numpy(x).cuda() for x in logits])
    device_frame = torch.from_numpy(frame).cuda()
    gpu_filter = TemporalFilter()
    stats = timed(lambda: gpu_filter.update(next(device_logits), device_frame, geometry), frames, True)
    device_mask = TemporalFilter().update(torch.from_numpy(logits[0]).cuda(), device_frame, geometry).mask
    agreement = float((device_mask.cpu().numpy() == TemporalFilter().update(logits[0], frame, geometry).mask).mean())
    path = "labelling on the GPU (cupy)" if cupy else "host clean-up (cupy missing)"
    rows.append(row(f"temporal filter CUDA per frame, {path}", stats, {"mask_agreement_with_cpu": agreement}))
    if cupy:
        rows += _cupy_clean_rows(mask, frames)
    return rows


def _cupy_clean_rows(mask, frames: int) -> list[Row]:
    import cupy
    from cupyx.scipy import ndimage

    from surgseg.engines.temporal import clean_by_labels

    device_mask = cupy.asarray(mask)
    sync = cupy.cuda.Device().synchronize

    def labels():
        clean_by_labels(device_mask.copy(), 2, True, 64, cupy, ndimage)
        sync()

    def old_fill():
        ndimage.binary_fill_holes(device_mask == 1)
        sync()

    return [row("temporal clean-up CUDA, labelling (after)", timed(labels, frames, False)),
            row("temporal hole filling CUDA, cupyx binary_fill_holes (before, fill only)", timed(old_fill, frames,
                                                                                                  False))]


def _ellipse_logits(size: tuple[int, int], shift: int):
    """(1, 2, h, w) float32 logits: an ellipse (with a hole) moving right, plus isolated specks."""
    import cv2
    import numpy as np

    h, w = size
    fg = np.zeros(size, np.uint8)
    cv2.ellipse(fg, (w // 2 + 4 * shift, h // 2), (w // 5, h // 5), 15, 0, 360, 1, -1)
    cv2.circle(fg, (w // 2 + 4 * shift, h // 2), max(2, h // 40), 0, -1)
    fg[np.random.default_rng(shift).random(size) < 0.0005] = 1
    strength = np.where(fg > 0, 4.0, -4.0).astype(np.float32)
    return np.stack([np.zeros_like(strength), strength])[None]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=100, help="timed calls per measurement")
    parser.add_argument("--refiner-size", type=int, nargs=2, default=(736, 1280), metavar=("H", "W"))
    parser.add_argument("--frame-size", type=int, nargs=2, default=(720, 1280), metavar=("H", "W"))
    parser.add_argument("--no-tests", action="store_true", help="skip the CUDA-marked tests run first")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    started = time.perf_counter()
    rows = guarded("wheels from .whl/", install_wheels)
    note = ensure_importable()
    import importlib.util

    import torch

    from benchmarks.common import write_result

    cuda = torch.cuda.is_available()
    cupy = cuda and importlib.util.find_spec("cupy") is not None
    sam2 = importlib.util.find_spec("sam2") is not None
    refiner_size, frame_size = tuple(args.refiner_size), tuple(args.frame_size)
    cpu_frames = max(3, args.frames // 10)
    if not args.no_tests:
        rows += guarded("CUDA-marked tests", lambda: run_cuda_tests({"cuda": cuda}, 150))
    rows += guarded("refiner", lambda: refiner_rows(refiner_size, args.frames if cuda else cpu_frames, cuda))
    rows += guarded("SAM 2", lambda: sam2_rows(frame_size, max(10, args.frames // 2), cuda, sam2))
    rows += guarded("synthetic source", lambda: synthetic_row(frame_size, max(cpu_frames, 30)))
    rows += guarded("temporal filter", lambda: temporal_rows(frame_size, refiner_size, args.frames, cuda, cupy))
    total_s = time.perf_counter() - started
    for r in rows:
        log.info("%-90s %-8s %s", r.step, r.status, r.result)
    environment = {"torch": torch.__version__, "cuda": cuda, "cupy": cupy, "sam2": sam2,
                   "gpu": torch.cuda.get_device_name() if cuda else None}
    path = write_result("gpu_fastpath", {"environment": environment, "import_note": note, "total_s": total_s,
                                         "rows": [r.__dict__ for r in rows]})
    log.info("wrote %s (%.0f s)", path, total_s)
    return 1 if any(r.status == "FAIL" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
