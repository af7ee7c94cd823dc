"""`surgseg qa` fails exactly when a tag's Dice drops by more than the tolerance against the baseline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from graph_helpers import shipped_model_size, surgseg
from test_export import export_tiny_refiner

from surgseg.app.qa import compare, read_baseline
from surgseg.engines.errors import InputError

MODEL_SIZE = shipped_model_size()


def test_compare_flags_only_drops_beyond_tolerance() -> None:
    baseline = {"tags": {"smoke": {"dice": 0.80}, "glare": {"dice": 0.70}, "absent": {"dice": 0.9}}}
    current = {"smoke": {"dice": 0.785}, "glare": {"dice": 0.65}}
    assert compare(current, baseline, 0.02) == [
        "glare: Dice 0.650 vs baseline 0.700 (−0.050 > 0.02)",
        "absent: missing from this run (baseline Dice 0.900)",
    ]


def test_missing_or_foreign_baseline_is_named(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no baseline"):
        read_baseline(tmp_path / "none.json")
    (tmp_path / "other.json").write_text('{"tags": []}')
    with pytest.raises(InputError, match="not a QA baseline"):
        read_baseline(tmp_path / "other.json")


@pytest.mark.slow
def test_qa_passes_against_its_own_baseline_and_fails_on_a_raised_one(tmp_path: Path) -> None:
    refiner = export_tiny_refiner(tmp_path, num_classes=2, size=MODEL_SIZE)
    common = ["--set", f"operators.refiner.artifact={refiner.folder / 'refiner.onnx'}", "--set", "device=cpu",
              "--set", "operators.prior.model.image_size=128", "--seeds", "0", "--frames", "8", "--out", str(tmp_path / "qa")]
    baseline = tmp_path / "baseline.json"
    created = surgseg("qa", "--baseline", str(baseline), "--update", *common, timeout=600)
    assert created.returncode == 0, created.stderr
    tags = json.loads(baseline.read_text())["tags"]
    assert sum(score["frames"] for score in tags.values()) >= 8  # every frame scored under a tag or as clean
    assert surgseg("qa", "--baseline", str(baseline), *common, timeout=600).returncode == 0
    raised = json.loads(baseline.read_text())
    tag = next(iter(raised["tags"]))
    raised["tags"][tag]["dice"] += 0.05
    baseline.write_text(json.dumps(raised))
    failed = surgseg("qa", "--baseline", str(baseline), *common, timeout=600)
    assert failed.returncode == 1
    assert f"regression: {tag}: Dice" in failed.stderr


def test_committed_baseline_covers_every_difficulty_tag_for_the_demo_refiner() -> None:
    from surgseg.engines.video.synthetic import TAGS

    baseline = read_baseline(Path(__file__).resolve().parents[1] / "qa" / "baseline.json")
    assert set(TAGS) | {"clean"} <= set(baseline["tags"])
    tags = baseline["tags"]
    assert sum(score["frames"] for score in tags.values()) >= len(baseline["seeds"]) * baseline["frames"]
    assert tags["clean"]["dice"] > 0.9 and min(score["dice"] for score in tags.values()) > 0.75  # a working refiner
    assert len(baseline["refiner_sha256"]) == 64 and baseline["graph"] == "replay_fast.yaml"
