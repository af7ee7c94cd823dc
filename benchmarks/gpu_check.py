"""The GPU check (`make gpu-check`): one command on a CUDA machine, a clear line for everything it cannot do.

Steps: the CUDA-marked tests; the TensorRT FP16 engine and its accuracy gate; the refiner at 736×1280 (goal ≤ 1 ms
with the torch CUDA backend, fp16 + CUDA graph; ONNX Runtime CPU beside it); SAM 2 tiny streaming steps at 512 and
1024 px (bf16) and per SAM 2 backend at 512 px (torch fp32 / bf16 / bf16 + encoder CUDA graph, ONNX Runtime CUDA,
TensorRT FP16 where they exist); the replay graph end-to-end on a synthetic 1280×720 clip with SAM 2 sync, async and async in a worker
process (p50/p95/p99, fps and prior age from its latency JSON). It ends with one table and
`benchmarks/results/gpu_check.json`, within about 8 minutes.

Made for machines without network (H100/H200, Python 3.12, torch + cupy + onnx + onnxruntime preinstalled): wheels it
lacks come from `.whl/` (see `benchmarks/gpu_wheels.sh`) installed with `pip --no-index --target`; when the surgseg
package itself is not installed, it is imported from this source tree. On a CPU machine the GPU steps say they were
skipped and why, and the CPU parts still run.

Usage: python benchmarks/gpu_check.py [--checkpoint runs/x/best.pt] [--graph-frames 300]
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import importlib.util
import json
import logging
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("app", "operators", "engines", "training", "graphs")
REFINER_SIZE = (736, 1280)
REFINER_GOAL_MS = 1.0
SAM2_SIDES = (512, 1024)
FRAME_SIZE = (720, 1280)
REPLAY_GRAPH = REPO / "graphs" / "replay_fast.yaml"
TOTAL_BUDGET_S = 8 * 60

log = logging.getLogger("gpu_check")


@dataclass
class Row:
    """One line of the final table and one entry of the JSON."""

    step: str
    status: str  # ok | FAIL | skipped | over goal
    result: str = ""
    goal: str = ""
    data: dict[str, Any] = field(default_factory=dict)


def add_import_path(path: Path) -> None:
    """Importable here and in the subprocesses this check starts."""
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(path), os.environ.get("PYTHONPATH")]))


def install_wheels() -> Row:
    """Install the wheels of `.whl/` whose distribution is missing here (pip --no-index --target) and use them."""
    name = "wheels from .whl/"
    wheels = sorted((REPO / ".whl").glob("*.whl"))
    if not wheels:
        return Row(name, "skipped", "no .whl/ folder (benchmarks/gpu_wheels.sh makes one)")
    python_tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    wanted = [w for w in wheels if _missing(w.name.split("-")[0]) and w.name.split("-")[-3] in (python_tag, "py3")]
    if not wanted:
        return Row(name, "ok", "everything already installed")
    target = Path(tempfile.gettempdir()) / "surgseg-gpu-site"
    command = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile", "--upgrade",
               "--target", str(target), *map(str, wanted)]
    subprocess.run(command, check=True, capture_output=True, text=True)
    links = finish_axle_installs(target)
    add_import_path(target)
    return Row(name, "ok", f"{len(wanted)} installed into {target}, {links} library links made", "",
               {"wheels": [w.name for w in wanted]})


def finish_axle_installs(target: Path) -> int:
    """Make the symlinks that wheel-axle wheels (holoscan) list in `symlinks.txt` and drop their finishing .pth.

    wheel-axle makes them at first import from a .pth file, but it cannot tell the install scheme of a
    `pip --target` folder and gives up, leaving `libholoscan_core.so.4` missing. Returns the links made."""
    made = 0
    for listing in target.glob("*.dist-info/symlinks.txt"):
        for line in listing.read_text().splitlines():
            path, link_target, is_dir = line.rsplit(",", 2)
            link = target / path.split("/purelib/", 1)[-1].split("/platlib/", 1)[-1]
            if not link.exists() and not link.is_symlink():
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(link_target, target_is_directory=is_dir == "1")
                made += 1
        for pth in target.glob(listing.parent.name.split("-")[0] + "*.pth"):
            pth.unlink()
    return made


def _missing(distribution: str) -> bool:
    try:
        md.version(distribution.replace("_", "-"))
    except md.PackageNotFoundError:
        return True
    return False


def ensure_importable() -> str:
    """Make `surgseg` and `benchmarks` importable (here and in subprocesses); say how."""
    add_import_path(REPO)
    if importlib.util.find_spec("surgseg") is not None and importlib.util.find_spec("surgseg.engines") is not None:
        return "surgseg installed"
    source = Path(tempfile.gettempdir()) / "surgseg-src"
    (source / "surgseg").mkdir(parents=True, exist_ok=True)
    for name in PACKAGES:
        link = source / "surgseg" / name
        if not link.is_symlink():
            link.symlink_to(REPO / name, target_is_directory=True)
    add_import_path(source)
    return f"surgseg not installed: imported from the source tree via {source}"


def environment() -> dict[str, Any]:
    import torch

    from surgseg.operators.holoscan_loader import prepare_holoscan

    prepare_holoscan()
    cuda = torch.cuda.is_available()
    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "cuda": cuda,
        "gpu": torch.cuda.get_device_name() if cuda else None,
        "tensorrt": _version("tensorrt"),
        "cupy": _version("cupy"),
        "onnxruntime": _version("onnxruntime"),
        "sam2": _version("sam2"),
        "holoscan": _version("holoscan"),
        "av": _version("av"),
    }


def _version(module: str) -> str | None:
    """The module's version if it imports, else None (a library that fails to load counts as absent)."""
    if importlib.util.find_spec(module) is None:
        return None
    try:
        return str(getattr(__import__(module), "__version__", "present"))
    except Exception as exc:  # noqa: BLE001 - e.g. tensorrt bindings without TensorRT's libraries
        log.info("%s is installed but does not import: %s", module, exc)
        return None


def run_cuda_tests(env: dict[str, Any], budget_s: float) -> Row:
    if not env["cuda"]:
        return Row("CUDA-marked tests", "skipped", "no CUDA device")
    files = sorted(str(p.relative_to(REPO)) for p in (REPO / "tests").rglob("test_*.py")
                   if "mark.cuda" in p.read_text())
    command = [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider", *files]
    try:
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=budget_s)
    except subprocess.TimeoutExpired:
        return Row("CUDA-marked tests", "FAIL", f"timed out after {budget_s:.0f} s")
    tail = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr.strip()[-200:]
    counts = {key: int(n) for n, key in re.findall(r"(\d+) (passed|failed|skipped|error)", tail)}
    log.info("pytest -m cuda: %s\n%s", tail, done.stdout[-4000:] if done.returncode else "")
    status = "ok" if done.returncode == 0 else "FAIL"
    return Row("CUDA-marked tests", status, tail, "all pass", {"files": files, "counts": counts,
                                                               "exit_code": done.returncode})


def export_check_refiner(folder: Path, checkpoint: Path | None):
    """The artefact to time: the given checkpoint exported, or a random-weight 'small' refiner at 736×1280."""
    from benchmarks.refiner_latency import export_random_refiner
    from surgseg.engines.refiner.artifact import RefinerArtifact
    from surgseg.training.export import ExportConfig, export_refiner

    if checkpoint is None:
        return export_random_refiner(REFINER_SIZE, folder, "small"), "random-weight 'small' refiner"
    export_refiner(ExportConfig(checkpoint=checkpoint, out=folder / "models", val_frames=4))
    return RefinerArtifact.load(folder / "models"), f"exported from {checkpoint}"


def tensorrt_gate(env: dict[str, Any], artifact) -> Row:
    if not env["cuda"]:
        return Row("TensorRT FP16 engine + gate", "skipped", "no CUDA device")
    if env["tensorrt"] is None:
        return Row("TensorRT FP16 engine + gate", "skipped",
                   "tensorrt does not import (TensorRT's libraries cannot be brought to this machine)")
    from surgseg.training.export import build_checked_engine, synthetic_inputs

    started = time.perf_counter()
    engine = build_checked_engine(artifact, synthetic_inputs(artifact, 8, seed=0), "fp16")
    return Row("TensorRT FP16 engine + gate", "ok", f"mean mask IoU {engine['mean_iou']:.4f}", ">= 0.99",
               {"engine": str(engine["path"]), "mean_iou": engine["mean_iou"],
                "build_s": time.perf_counter() - started})


def _stats(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {"median_ms": statistics.median(ordered), "p95_ms": ordered[int(0.95 * (len(ordered) - 1))],
            "min_ms": ordered[0], "frames": len(ordered)}


def refiner_timings(env: dict[str, Any], artifact) -> list[Row]:
    import torch

    from benchmarks.refiner_latency import refiner_call, time_ms
    from surgseg.engines.refiner.runtime import RefinerRuntime, RuntimeConfig

    size = "x".join(map(str, REFINER_SIZE))
    rows = []
    cpu = RefinerRuntime(artifact, RuntimeConfig(backend="onnxruntime", device="cpu", threads=2))
    stats = _stats(time_ms(refiner_call(cpu), 5, 1))
    rows.append(Row(f"refiner {size} onnxruntime CPU 2 threads", "ok", f"{stats['median_ms']:.1f} ms", "", stats))
    if not env["cuda"]:
        rows.append(Row(f"refiner {size} torch CUDA fp16 + graph", "skipped", "no CUDA device",
                        f"<= {REFINER_GOAL_MS} ms"))
        return rows
    backends = [("torch CUDA fp16 + graph", RuntimeConfig(backend="torch", device="cuda")),
                ("torch CUDA fp32, no graph", RuntimeConfig(backend="torch", device="cuda", fp16=False,
                                                           cuda_graph=False))]
    if env["tensorrt"] is not None:
        backends.append(("TensorRT fp16", RuntimeConfig(backend="tensorrt")))
    for label, config in backends:
        runtime = RefinerRuntime(artifact, config)
        stats = _stats(time_ms(refiner_call(runtime, "cuda"), 200, 20, torch.cuda.synchronize))
        goal_met = stats["median_ms"] <= REFINER_GOAL_MS
        rows.append(Row(f"refiner {size} {label}", "ok" if goal_met else "over goal",
                        f"{stats['median_ms']:.3f} ms (p95 {stats['p95_ms']:.3f})", f"<= {REFINER_GOAL_MS} ms", stats))
    return rows


def sam2_timings(env: dict[str, Any]) -> list[Row]:
    if not env["cuda"]:
        return [Row(f"SAM 2 tiny step @{side} bf16", "skipped", "no CUDA device (about 3 s a step on 2 CPU cores)")
                for side in SAM2_SIDES]
    if env["sam2"] is None:
        return [Row(f"SAM 2 tiny step @{side} bf16", "skipped", "sam2 not installed (bring it in .whl/)")
                for side in SAM2_SIDES]
    import torch

    from benchmarks.refiner_latency import sam2_step_call, time_ms

    rows = []
    for side in SAM2_SIDES:
        step = sam2_step_call(FRAME_SIZE, side, 40, device="cuda", precision="bf16")
        stats = _stats(time_ms(step, 30, 10, torch.cuda.synchronize))
        rows.append(Row(f"SAM 2 tiny step @{side} bf16", "ok",
                        f"{stats['median_ms']:.2f} ms (p95 {stats['p95_ms']:.2f})", "", stats))
    return rows


def sam2_backend_rows(env: dict[str, Any], folder: Path) -> list[Row]:
    """The streaming step at 512 px per SAM 2 backend, alternating in one run (`benchmarks.sam2_backends`)."""
    if not env["cuda"]:
        return [Row("SAM 2 backends @512", "skipped", "no CUDA device")]
    from benchmarks.sam2_backends import gpu_rows

    rows = []
    for found in gpu_rows(folder, size=SAM2_SIDES[0], frames=50):
        if "skipped" in found:
            rows.append(Row(f"{found['name']} @{SAM2_SIDES[0]}", "skipped", found["skipped"]))
        else:
            rows.append(Row(f"{found['name']} @{found['size']}", "ok", f"{found['ms_median']:.2f} ms", "", found))
    return rows


RUNTIMES = {"sync": "{mode: sync}", "async": "{mode: async, warp: flow}",
            "async in a worker process": "{mode: async, warp: flow, worker: process}"}
"""The SAM 2 runtimes the replay graph runs with (`operators.prior.runtime`)."""


def replay_graph(env: dict[str, Any], artifact, frames: int, budget_s: float, mode: str = "sync") -> Row:
    """`surgseg run graphs/replay_fast.yaml` on a synthetic 1280×720 clip with SAM 2 as `RUNTIMES[mode]`;
    p50/p95/p99 from its latency JSON."""
    name = f"replay graph end-to-end 1280x720, SAM 2 {mode}"
    if not REPLAY_GRAPH.is_file():
        return Row(name, "skipped", f"{REPLAY_GRAPH.relative_to(REPO)} does not exist yet")
    if env["holoscan"] is None:
        return Row(name, "skipped", "holoscan does not import (bring holoscan-cu12 + nvidia-cuda-runtime-cu12)")
    if env["sam2"] is None:
        return Row(name, "skipped", "sam2 not installed (bring it in .whl/)")
    frames = frames if env["cuda"] else min(frames, 5)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        overrides = graph_overrides(artifact, folder, env["cuda"], frames)
        overrides["operators.prior.runtime"] = RUNTIMES[mode]
        command = [sys.executable, "-m", "surgseg.app.cli", "run", str(REPLAY_GRAPH), "--frames", str(frames)]
        command += [arg for key, value in overrides.items() for arg in ("--set", f"{key}={value}")]
        try:
            done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=budget_s)
        except subprocess.TimeoutExpired:
            return Row(name, "FAIL", f"timed out after {budget_s:.0f} s ({frames} frames)")
        latency = folder / "latency.json"
        if done.returncode != 0 or not latency.is_file():
            last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            return Row(name, "FAIL", f"exit {done.returncode}: {last[0][:160]}", "", {"command": command})
        latency_text = latency.read_text()
        percentiles = find_percentiles(json.loads(latency_text))
    if not percentiles:
        return Row(name, "FAIL", "latency JSON has no p50/p95/p99", "", {"command": command})
    text = " / ".join(f"{percentiles[k]:.1f}" for k in ("p50", "p95", "p99")) + " ms (p50/p95/p99)"
    report = json.loads(latency_text)
    fps, age = report.get("throughput_fps"), report.get("prior_age_frames", {}).get("p50")
    text += f", {fps} fps" + (f", prior age p50 {age:.0f} frames" if age is not None else "")
    return Row(name, "ok", f"{text}, {frames} frames", "",
               {**percentiles, "frames": frames, "overrides": overrides, "throughput_fps": fps,
                "per_operator_ms": report.get("per_operator_ms"), "prior_age_frames": report.get("prior_age_frames")})


def graph_overrides(artifact, folder: Path, cuda: bool, frames: int) -> dict[str, str]:
    """`--set` keys pointing replay_fast.yaml at a synthetic 1280×720 source (no PyAV needed: its wheel does not fit
    the GPU machine's 64 MiB), this check's refiner and a latency file."""
    h, w = artifact.input_size
    return {
        "device": "cuda" if cuda else "cpu",
        "operators.source": f"{{type: SyntheticSource, frames: {frames}, size: [{FRAME_SIZE[1]}, {FRAME_SIZE[0]}], "
                            "num_classes: 2}",
        "operators.preproc.size": f"[{h}, {w}]",
        "operators.prior.model.image_size": "512" if cuda else "256",
        "operators.refiner.size": f"[{h}, {w}]",
        "operators.refiner.artifact": str(artifact.metadata_path.with_name("refiner.onnx")),
        "operators.metrics.path": str(folder / "metrics.json"),
        "operators.latency.path": str(folder / "latency.json"),
    }


def find_percentiles(payload: Any) -> dict[str, float]:
    """p50/p95/p99 (ms) of the end-to-end entry of a latency JSON: the first dict holding all three, preferring
    one under a key containing 'end'."""
    candidates: list[tuple[bool, dict[str, float]]] = []

    def visit(node: Any, preferred: bool) -> None:
        if isinstance(node, dict):
            found = {}
            for key, value in node.items():
                match = re.fullmatch(r"(p50|p95|p99)(_ms)?", str(key))
                if match and isinstance(value, (int, float)):
                    found[match.group(1)] = float(value)
            if len(found) == 3:
                candidates.append((preferred, found))
            for key, value in node.items():
                visit(value, preferred or "end" in str(key).lower())
        elif isinstance(node, list):
            for value in node:
                visit(value, preferred)

    visit(payload, False)
    candidates.sort(key=lambda item: not item[0])
    return candidates[0][1] if candidates else {}


def guarded(name: str, step: Callable[[], Row | list[Row]]) -> list[Row]:
    """Run a step; an exception becomes a FAIL row instead of ending the check."""
    started = time.perf_counter()
    try:
        result = step()
    except Exception as exc:  # noqa: BLE001 - the check reports every step, whatever breaks
        log.exception("%s failed", name)
        result = Row(name, "FAIL", f"{type(exc).__name__}: {str(exc)[:160]}")
    rows = result if isinstance(result, list) else [result]
    log.info("%s: %.1f s", name, time.perf_counter() - started)
    return rows


def print_table(rows: list[Row], env: dict[str, Any], note: str) -> None:
    from rich.console import Console
    from rich.table import Table

    title = f"GPU check: {env['gpu'] or 'no CUDA device'} · torch {env['torch']} · python {env['python']}"
    table = Table(title=title, caption=note)
    for column in ("step", "status", "result", "goal"):
        table.add_column(column)
    styles = {"ok": "green", "FAIL": "red", "skipped": "yellow", "over goal": "magenta"}
    for row in rows:
        table.add_row(row.step, f"[{styles.get(row.status, '')}]{row.status}[/]", row.result, row.goal)
    Console(width=160).print(table)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, help="a trained refiner checkpoint (default: random weights)")
    parser.add_argument("--graph-frames", type=int, default=300)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    started = time.perf_counter()
    rows = guarded("wheels from .whl/", install_wheels)
    note = ensure_importable()
    from benchmarks.common import write_result

    env = environment()
    log.info("environment: %s (%s)", env, note)
    rows += guarded("CUDA-marked tests", lambda: run_cuda_tests(env, 150))
    with tempfile.TemporaryDirectory() as tmp:
        exported: list = []
        rows += guarded("refiner export", lambda: _export_row(Path(tmp), args.checkpoint, exported))
        if exported:
            artifact = exported[0]
            rows += guarded("TensorRT FP16 engine + gate", lambda: tensorrt_gate(env, artifact))
            rows += guarded("refiner timing", lambda: refiner_timings(env, artifact))
        else:
            rows.append(Row("TensorRT gate, refiner timing, replay graph", "skipped", "the refiner export failed"))
        rows += guarded("SAM 2 timing", lambda: sam2_timings(env))
        rows += guarded("SAM 2 backends", lambda: sam2_backend_rows(env, Path(tmp) / "sam2_exports"))
        if exported:
            for left, mode in zip(range(len(RUNTIMES), 0, -1), RUNTIMES):  # runs left, this one included
                remaining = (TOTAL_BUDGET_S - (time.perf_counter() - started) - 20) / left
                rows += guarded(f"replay graph {mode}",
                                lambda: replay_graph(env, exported[0], args.graph_frames, remaining, mode))
    total_s = time.perf_counter() - started
    print_table(rows, env, f"{note}; {total_s:.0f} s in all")
    path = write_result("gpu_check", {"environment": env, "import_note": note, "total_s": total_s,
                                      "rows": [row.__dict__ for row in rows]})
    log.info("wrote %s", path)
    return 1 if any(row.status == "FAIL" for row in rows) else 0


def _export_row(folder: Path, checkpoint: Path | None, exported: list) -> Row:
    artifact, source = export_check_refiner(folder, checkpoint)
    exported.append(artifact)
    check = artifact.extra.get("export_check", {})
    worst = max(check.get("max_abs_logit_diff", {"-": float("nan")}).values())
    return Row("refiner export (ONNX + torch program)", "ok", f"{source}; max |Δlogit| {worst:.1e}", "<= 1e-3")


if __name__ == "__main__":
    sys.exit(main())
