"""benchmarks/gpu_fastpath.py runs on a CPU machine: CPU rows measured, GPU rows skipped with a reason."""

from __future__ import annotations

import json

import benchmarks.common
from benchmarks import gpu_fastpath
from benchmarks.gpu_check import Row
from surgseg.training.refiner_net import TinyRefiner, refiner_config


def test_fastpath_benchmark_runs_on_cpu_and_skips_gpu_parts_with_a_reason(tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(benchmarks.common, "RESULTS", tmp_path)
    monkeypatch.setattr(gpu_fastpath, "install_wheels", lambda: Row("wheels from .whl/", "skipped", "test"))
    code = gpu_fastpath.main(["--frames", "3", "--refiner-size", "32", "64", "--frame-size", "36", "64"])
    rows = {row["step"]: row for row in json.loads((tmp_path / "gpu_fastpath.json").read_text())["rows"]}
    assert code == 0
    refiner = [row for step, row in rows.items() if step.startswith("refiner 32x64 CPU fp32 eager")]
    assert len(refiner) == 4 and all(row["status"] == "ok" for row in refiner)
    assert all(row["data"]["max_abs_logit_diff_vs_fp32"] < 1e-4 for row in refiner)
    every_bn = sum(isinstance(m, torch.nn.BatchNorm2d) for m in TinyRefiner(refiner_config("small")).modules())
    assert {row["data"]["batchnorm_folded"] for row in refiner} == {0, every_bn}
    assert rows["synthetic source 64x36 per frame"]["data"]["median_ms"] > 0
    assert rows["temporal filter CPU 64x36 per frame"]["status"] == "ok"
    skipped = [row for row in rows.values() if row["status"] == "skipped" and row["step"] != "wheels from .whl/"]
    assert {row["result"] for row in skipped} == {"no CUDA device"} and len(skipped) == 4
    assert rows["CUDA-marked tests"]["status"] == "skipped"
