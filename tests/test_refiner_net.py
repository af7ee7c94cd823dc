"""The tiny refiner: sizes, shapes, parameter budget, checkpoint round trip and a clean ONNX export."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch

from surgseg.engines.errors import InputError
from surgseg.training.refiner_net import (
    SIZES,
    RefinerConfig,
    TinyRefiner,
    checkpoint_payload,
    count_macs,
    count_parameters,
    dummy_inputs,
    load_refiner,
    refiner_config,
)


@pytest.mark.parametrize("size", sorted(SIZES))
def test_every_size_stays_under_two_million_parameters(size: str) -> None:
    assert count_parameters(TinyRefiner(refiner_config(size))) < 2_000_000


def test_default_width_is_small_and_light() -> None:
    model = TinyRefiner(RefinerConfig())
    assert count_parameters(model) < 500_000
    assert count_macs(model, (288, 384)) < 1e9


def test_output_shapes_for_three_classes() -> None:
    model = TinyRefiner(refiner_config("nano", num_classes=3))
    image, prior = dummy_inputs(model.config, (32, 64), batch=2)
    assert prior.shape == (2, 2, 32, 64)
    logits, edges = model.forward_with_boundary(image, prior)
    assert logits.shape == (2, 3, 32, 64) and edges.shape == (2, 1, 32, 64)
    assert model(image, prior).shape == (2, 3, 32, 64)


def test_untrained_refiner_follows_the_prior() -> None:
    torch.manual_seed(0)
    model = TinyRefiner(refiner_config("nano")).eval()
    image, _ = dummy_inputs(model.config, (32, 32))
    prior = torch.full((1, 1, 32, 32), -20.0)
    prior[..., 8:24, 8:24] = 20.0
    with torch.no_grad():
        mask = model(image, prior).argmax(dim=1)[0]
    assert torch.equal(mask.bool(), prior[0, 0] > 0)


def test_input_size_must_be_a_multiple_of_the_stride() -> None:
    with pytest.raises(InputError):
        dummy_inputs(RefinerConfig(), (100, 64))


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    model = TinyRefiner(refiner_config("nano"))
    path = tmp_path / "refiner.pt"
    torch.save(checkpoint_payload(model, input_size=(32, 32), classes=["background", "polyp"], data_fingerprint="x",
                                  val_metrics={"mean_dice": 0.5}, epoch=3), path)
    loaded, meta = load_refiner(path)
    image, prior = dummy_inputs(model.config, (32, 32))
    model.eval()
    assert torch.equal(loaded(image, prior), model(image, prior))
    assert meta["classes"] == ["background", "polyp"] and meta["input_size"] == [32, 32]
    assert meta["prior_encoding"] == "logits" and meta["refiner_config"]["width"] == 8


def test_load_refiner_names_a_bad_file(tmp_path: Path) -> None:
    path = tmp_path / "junk.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="junk.pt"):
        load_refiner(path)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_onnx_export_uses_standard_ops_and_matches_torch() -> None:
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    model = TinyRefiner(refiner_config("nano")).eval()
    image, prior = torch.randn(1, 3, 64, 96), torch.randn(1, 1, 64, 96)
    buffer = io.BytesIO()
    torch.onnx.export(model, (image, prior), buffer, opset_version=17, dynamo=False,
                      input_names=["image", "prior"], output_names=["logits"])
    graph = onnx.load_from_string(buffer.getvalue()).graph
    assert {n.op_type for n in graph.node} <= {"Conv", "Relu", "Resize", "Concat", "Add", "Mul", "Slice",
                                               "ReduceMean", "Constant", "Identity"}
    session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    out = session.run(None, {"image": image.numpy(), "prior": prior.numpy()})[0]
    np.testing.assert_allclose(out, model(image, prior).detach().numpy(), atol=1e-4)
