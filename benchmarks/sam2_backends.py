"""Streaming SAM 2 step per backend: torch vs ONNX Runtime fp32 vs ONNX Runtime int8, alternating frame by frame.

SAM 2.1 tiny with random weights, exported once per size (`surgseg export-sam2`, cached under --exports), a
synthetic clip preprocessed up front, K=5, N=6. Each frame is stepped by every backend in turn (the order rotates),
so machine load hits all of them alike; `ratio_int8_over_torch` per size (goal <= 0.5 at 256 px) and the median ms
each heavy module took per call. `gpu_rows()` is the same step on a GPU (torch CUDA, ONNX Runtime CUDA, TensorRT
FP16) for `benchmarks/gpu_check.py`; rows for what the machine lacks say why they were skipped.

torch's OpenMP threads wait passively (OMP_WAIT_POLICY=PASSIVE unless set): on the shared 2-core machine, spinning
OpenMP workers descheduled by other jobs made eager torch up to 15x slower than the same code a minute later, while
ONNX Runtime's own pool (spinning off, see `ort_session`) was unaffected; a comparison needs both to wait alike.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read once, when torch loads libgomp: set it before the import

import argparse  # noqa: E402
import collections  # noqa: E402
import logging  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from benchmarks.common import write_result  # noqa: E402
from benchmarks.sam2_stream import Clip  # noqa: E402
from surgseg.engines.errors import InputError  # noqa: E402
from surgseg.engines.sam2.config import MemoryConfig, ModelConfig, RuntimeConfig, SAM2Config  # noqa: E402
from surgseg.engines.sam2.manifest import ExportManifest  # noqa: E402
from surgseg.engines.sam2.model import build_sam2_model  # noqa: E402
from surgseg.engines.sam2.stream import StreamingSAM2  # noqa: E402

log = logging.getLogger("sam2_backends")
GOAL_256 = 0.5
MEMORY = MemoryConfig(every=5, max_memories=6)
BACKENDS = {"torch": {"backend": "torch"}, "ort_fp32": {"backend": "onnxruntime", "precision": "fp32"},
            "ort_int8": {"backend": "onnxruntime", "precision": "int8"}}
GPU_BACKENDS = {"torch_fp32": {"backend": "torch"}, "torch_bf16": {"backend": "torch", "precision": "bf16"},
                "torch_bf16_cuda_graph": {"backend": "torch", "precision": "bf16", "cuda_graph": True},
                "ort_cuda_fp32": {"backend": "onnxruntime", "precision": "fp32"},
                "tensorrt_fp16": {"backend": "tensorrt", "precision": "fp16"}}
METHODS = ("encode_image", "memory_attention", "heads", "mask_as_output", "encode_memory")


class TimedModules:
    """Wraps a backend's modules and records the milliseconds of every call per method."""

    def __init__(self, modules) -> None:
        self.inner = modules
        self.name = modules.name
        self.ms: dict[str, list[float]] = collections.defaultdict(list)

    def __getattr__(self, method: str):
        call = getattr(self.inner, method)
        if method not in METHODS:
            return call

        def timed(*args, **kwargs):
            start = time.perf_counter()
            result = call(*args, **kwargs)
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.ms[method].append((time.perf_counter() - start) * 1e3)
            return result

        return timed


def exported_folder(root: Path, model: ModelConfig) -> Path:
    """An export of `model` under `root` (reused when its manifest matches, else written now, with int8)."""
    from surgseg.engines.sam2.export import ExportConfig, ensure_int8, export_sam2

    folder = root / f"{model.name}_{model.image_size}_seed{model.random_weights_seed}"
    try:
        manifest = ExportManifest.load(folder)
        manifest.check(model, "onnxruntime", "int8")
        ensure_int8(manifest)
        return folder
    except InputError as exc:
        log.info("exporting %s at %d px (%s)", model.name, model.image_size, exc)
    export_sam2(ExportConfig(model=model, out=folder, int8=True))
    return folder


def engines_for(model_config: ModelConfig, folder: Path | None, backends: dict[str, dict], device: str,
                threads: int) -> dict[str, StreamingSAM2]:
    """One engine per runtime setting (RuntimeConfig's fields) over the same torch model, each in TimedModules."""
    from surgseg.engines.sam2.backends import make_modules

    model = build_sam2_model(model_config, device)
    engines = {}
    for name, settings in backends.items():
        runtime = RuntimeConfig(**settings, exported=None if folder is None else str(folder))
        config = SAM2Config(model=model_config, memory=MEMORY, runtime=runtime)
        modules = TimedModules(make_modules(model, config, device, threads))
        engines[name] = StreamingSAM2(config, device, model=model, modules=modules)
    return engines


def alternate(engines: dict[str, StreamingSAM2], frames: int, warmup: int) -> dict[str, list[float]]:
    """Seed every engine on the same frame, then step them all on each frame, rotating who goes first."""
    clip = Clip(next(iter(engines.values())))
    first = clip.next()
    for engine in engines.values():
        engine.seed(first, clip.prompts)
    names = list(engines)
    times: dict[str, list[float]] = {name: [] for name in names}
    for index in range(warmup + frames):
        image = clip.next()
        for name in names[index % len(names):] + names[:index % len(names)]:
            start = time.perf_counter()
            engines[name].step(image)
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            if index >= warmup:
                times[name].append((time.perf_counter() - start) * 1e3)
    return times


def measure(size: int, frames: int, args: argparse.Namespace) -> dict:
    model_config = ModelConfig(image_size=size)
    folder = exported_folder(args.exports, model_config)
    engines = engines_for(model_config, folder, BACKENDS, "cpu", args.threads)
    for engine in engines.values():
        engine.modules.ms.clear()
    times = alternate(engines, frames, args.warmup)
    row = {"size": size, "frames": frames, "every": MEMORY.every, "max_memories": MEMORY.max_memories}
    for name, ms in times.items():
        row[f"{name}_ms_median"] = statistics.median(ms)
        row[f"{name}_module_ms_median"] = {m: round(statistics.median(v), 2)
                                           for m, v in engines[name].modules.ms.items()}
    row["ratio_fp32_over_torch"] = row["ort_fp32_ms_median"] / row["torch_ms_median"]
    row["ratio_int8_over_torch"] = row["ort_int8_ms_median"] / row["torch_ms_median"]
    log.info("%d px: %s", size, {k: round(v, 3) for k, v in row.items() if isinstance(v, float)})
    return row


def gpu_rows(exports: Path, size: int = 256, frames: int = 50, warmup: int = 5) -> list[dict]:
    """The streaming step on the GPU per backend, for the GPU check's table: torch fp32 / bf16 / bf16 with the encoder
    replayed from a CUDA graph, ONNX Runtime with the CUDA execution provider and TensorRT FP16 engines (exported
    first, only when this machine can run either). A backend the machine lacks gives a row saying why."""
    if not torch.cuda.is_available():
        return [{"name": "SAM 2 step", "skipped": "no CUDA GPU"}]
    import onnxruntime as ort

    from surgseg.engines.refiner.runtime import tensorrt_usable

    model_config = ModelConfig(image_size=size)
    lacking = {"ort_cuda_fp32": None if "CUDAExecutionProvider" in ort.get_available_providers()
               else "onnxruntime has no CUDAExecutionProvider here",
               "tensorrt_fp16": None if tensorrt_usable() else "tensorrt does not import here"}
    rows = [{"name": f"SAM 2 step {name}", "skipped": why} for name, why in lacking.items() if why]
    wanted = {name: settings for name, settings in GPU_BACKENDS.items() if not lacking.get(name)}
    exported = any(settings["backend"] != "torch" for settings in wanted.values())
    folder = exported_folder(exports, model_config) if exported else None
    engines = engines_for(model_config, folder, wanted, "cuda", threads=1)
    for name, ms in alternate(engines, frames, warmup).items():
        rows.append({"name": f"SAM 2 step {name}", "size": size, "frames": frames,
                     "ms_median": statistics.median(ms)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--frames", type=int, nargs="+", default=[200, 200], help="timed frames per size")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2, help="torch and ONNX Runtime intra-op threads")
    parser.add_argument("--exports", type=Path, default=Path("/tmp/surgseg_sam2_exports"))
    parser.add_argument("--name", default="sam2_backends")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    torch.set_num_threads(args.threads)
    if len(args.frames) != len(args.sizes):
        raise SystemExit("--frames needs one count per --sizes entry")
    rows = [measure(size, frames, args) for size, frames in zip(args.sizes, args.frames)]
    payload = {"settings": {**vars(args), "exports": str(args.exports)}, "model": "sam2.1_hiera_tiny random weights",
               "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "load_average_1min": os.getloadavg()[0],
               "goal_ratio_int8_over_torch_256": GOAL_256, "rows": rows}
    for row in rows:
        print(f"{row['size']:4d} px ({row['frames']} frames): torch {row['torch_ms_median']:.1f} ms, ORT fp32 "
              f"{row['ort_fp32_ms_median']:.1f} ms (x{row['ratio_fp32_over_torch']:.2f}), ORT int8 "
              f"{row['ort_int8_ms_median']:.1f} ms (x{row['ratio_int8_over_torch']:.2f})")
    print(f"wrote {write_result(args.name, payload)}")


if __name__ == "__main__":
    main()
