"""Training under torchrun with DDP: two CPU processes (gloo) end with identical weights."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from graph_helpers import cli_env
from test_train import tiny_config


@pytest.mark.slow
def test_two_gloo_ranks_agree_on_the_weights_after_training(tmp_path: Path) -> None:
    config = tiny_config(tmp_path, max_steps=3, epochs=2)
    config.update(val_every=1, vis_count=0, threads=1)
    (tmp_path / "train.yaml").write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "surgseg.app.cli", "train", "--config", str(tmp_path / "train.yaml")]
    result = subprocess.run(command, capture_output=True, text=True, env=cli_env(), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    ddp = summary["distributed"]
    assert ddp["world_size"] == 2 and ddp["backend"] == "gloo"
    assert len(ddp["weight_sha256"]) == 2 and ddp["ranks_agree"] is True
    assert summary["steps"] >= 1 and (tmp_path / "run" / "best.pt").is_file()
