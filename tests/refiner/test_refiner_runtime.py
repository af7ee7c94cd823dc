"""RefinerRuntime: same inputs give the same logits on every backend present; bad artefacts and inputs refused."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
from test_export import SIZE, export_tiny_refiner

from surgseg.engines.errors import InputError
from surgseg.engines.refiner.artifact import RefinerArtifact
from surgseg.engines.refiner.runtime import RefinerRuntime, RuntimeConfig, fold_batchnorm, tensorrt_usable
from surgseg.training.export import fuse_conv_bn
from surgseg.training.refiner_net import TinyRefiner, refiner_config

CPU_BACKENDS = ("onnxruntime", "torch")


@pytest.fixture(scope="module")
def artifact(tmp_path_factory) -> RefinerArtifact:
    return export_tiny_refiner(tmp_path_factory.mktemp("refiner"), num_classes=3)


@pytest.fixture(scope="module")
def inputs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    return (rng.standard_normal((1, 3, *SIZE), dtype=np.float32),
            4 * rng.standard_normal((1, 2, *SIZE), dtype=np.float32))


def _reference(artifact, inputs) -> np.ndarray:
    return RefinerRuntime(artifact, RuntimeConfig(backend="onnxruntime", device="cpu")).run(*inputs)


def _refiner_with_trained_batchnorm() -> TinyRefiner:
    """A nano refiner whose BatchNorm statistics and affine terms are far from the identity."""
    torch.manual_seed(3)
    model = TinyRefiner(refiner_config("nano", num_classes=3))
    for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.2, 3)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.5, 0.5)
    return model.eval()


def _batch_norm_nodes(module) -> int:
    return sum(node.target == torch.ops.aten.batch_norm.default for node in module.graph.nodes)


def _require_cuda() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")


def test_cpu_backends_give_the_same_logits(artifact, inputs):
    outputs = {name: RefinerRuntime(artifact, RuntimeConfig(backend=name, device="cpu")).run(*inputs)
               for name in CPU_BACKENDS}
    assert outputs["onnxruntime"].shape == (1, 3, *SIZE)
    assert np.abs(outputs["onnxruntime"]).max() > 0.01
    np.testing.assert_allclose(outputs["torch"], outputs["onnxruntime"], atol=1e-4)


def test_batchnorm_folds_into_the_exported_programs_convolutions():
    model = _refiner_with_trained_batchnorm()
    image, prior = torch.randn(1, 3, *SIZE), 4 * torch.randn(1, 2, *SIZE)
    with torch.no_grad():
        program = torch.export.export(model, (image, prior))
    unfolded, folded = program.module(), program.module()
    count = fold_batchnorm(folded)
    assert count == _batch_norm_nodes(unfolded) == 18 and _batch_norm_nodes(folded) == 0
    with torch.no_grad():
        torch.testing.assert_close(folded(image, prior), unfolded(image, prior), atol=1e-4, rtol=0)


def test_fused_module_has_no_batchnorm_and_same_logits():
    model = _refiner_with_trained_batchnorm()
    fused = fuse_conv_bn(model)
    image, prior = torch.randn(1, 3, *SIZE), 4 * torch.randn(1, 2, *SIZE)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())  # the original is left alone
    with torch.no_grad():
        torch.testing.assert_close(fused(image, prior), model(image, prior), atol=1e-4, rtol=0)


def test_exported_onnx_and_program_carry_no_batchnorm(artifact):
    import onnx

    ops = {node.op_type for node in onnx.load(str(artifact.file("onnx"))).graph.node}
    assert "Conv" in ops and "BatchNormalization" not in ops
    assert _batch_norm_nodes(torch.export.load(str(artifact.file("torch"))).module()) == 0


def test_channels_last_torch_program_gives_the_same_logits_on_cpu(artifact, inputs):
    module = torch.export.load(str(artifact.file("torch"))).module()
    image, prior = (torch.from_numpy(x) for x in inputs)
    with torch.no_grad():
        expected = module(image, prior)
        module = module.to(memory_format=torch.channels_last)
        got = module(*(t.to(memory_format=torch.channels_last) for t in (image, prior)))
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)


def test_auto_on_cpu_picks_onnxruntime_and_logs_it(artifact, caplog, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with caplog.at_level(logging.INFO, logger="surgseg.engines.refiner.runtime"):
        runtime = RefinerRuntime(artifact)
    assert runtime.backend_name == "onnxruntime" and runtime.device == "cpu"
    assert "refiner backend: onnxruntime (auto: CPU)" in caplog.text


def test_output_array_kind_follows_the_input(artifact, inputs):
    runtime = RefinerRuntime(artifact, RuntimeConfig(backend="onnxruntime", device="cpu"))
    as_numpy = runtime.run(*inputs)
    as_torch = runtime.run(*(torch.from_numpy(x) for x in inputs))
    assert isinstance(as_numpy, np.ndarray) and isinstance(as_torch, torch.Tensor)
    np.testing.assert_array_equal(as_torch.numpy(), as_numpy)


def test_onnxruntime_thread_count_is_configurable(artifact):
    runtime = RefinerRuntime(artifact, RuntimeConfig(backend="onnxruntime", device="cpu", threads=3))
    assert runtime._backend.session.get_session_options().intra_op_num_threads == 3


def test_wrong_input_shape_is_refused_naming_the_input(artifact, inputs):
    runtime = RefinerRuntime(artifact, RuntimeConfig(backend="onnxruntime", device="cpu"))
    with pytest.raises(InputError, match=r"'prior': shape \(1, 1, 32, 48\) != artefact's \(1, 2, 32, 48\)"):
        runtime.run(inputs[0], inputs[1][:, :1])
    with pytest.raises(InputError, match="floating point"):
        runtime.run(inputs[0].astype(np.int32), inputs[1])


def test_malformed_metadata_is_refused_before_any_model_loads(artifact, tmp_path):
    payload = artifact.to_json()
    payload["input_size"] = [32]
    (tmp_path / "refiner.json").write_text(json.dumps(payload))
    with pytest.raises(InputError, match="input_size"):
        RefinerRuntime(tmp_path / "refiner.onnx")


def test_model_file_not_matching_its_metadata_is_refused(artifact, tmp_path):
    payload = artifact.to_json()
    (tmp_path / "refiner.json").write_text(json.dumps(payload))
    (tmp_path / "refiner.onnx").write_bytes(artifact.file("onnx").read_bytes()[:-1])
    with pytest.raises(InputError, match="different exports"):
        RefinerRuntime(tmp_path, RuntimeConfig(backend="onnxruntime", device="cpu"))


def test_unknown_backend_and_tensorrt_without_gpu_are_refused(artifact, monkeypatch):
    with pytest.raises(InputError, match="backend"):
        RuntimeConfig(backend="openvino")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InputError, match="tensorrt"):
        RefinerRuntime(artifact, RuntimeConfig(backend="tensorrt"))


@pytest.mark.cuda
def test_torch_cuda_fp16_graph_matches_cpu_reference(artifact, inputs):
    _require_cuda()
    runtime = RefinerRuntime(artifact, RuntimeConfig(backend="torch", device="cuda", fp16=True, cuda_graph=True))
    device_inputs = [torch.from_numpy(x).cuda() for x in inputs]
    first = runtime.run(*device_inputs)
    second = runtime.run(*device_inputs)
    assert first.is_cuda and first.dtype == torch.float32
    assert first.data_ptr() != second.data_ptr()  # each call returns its own tensor, not the graph's buffer
    np.testing.assert_allclose(second.cpu().numpy(), _reference(artifact, inputs), atol=0.1)


@pytest.mark.cuda
@pytest.mark.parametrize("cuda_graph", [False, True])
def test_torch_cuda_runs_folded_fp16_and_matches_cpu(artifact, inputs, cuda_graph):
    _require_cuda()
    runtime = RefinerRuntime(artifact, RuntimeConfig(backend="torch", device="cuda", fp16=True, cuda_graph=cuda_graph))
    backend = runtime._backend
    weights = [p for p in backend.module.parameters() if p.ndim == 4]
    assert weights and all(w.dtype == torch.float16 and w.is_contiguous() for w in weights)
    assert _batch_norm_nodes(backend.module) == 0
    logits = runtime.run(*(torch.from_numpy(x).cuda() for x in inputs))
    assert logits.dtype == torch.float32 and logits.is_contiguous()
    np.testing.assert_allclose(logits.cpu().numpy(), _reference(artifact, inputs), atol=0.1)


@pytest.mark.cuda
def test_cupy_input_returns_cupy_logits(artifact, inputs):
    _require_cuda()
    cupy = pytest.importorskip("cupy")
    runtime = RefinerRuntime(artifact, RuntimeConfig(backend="torch", device="cuda", fp16=False, cuda_graph=False))
    logits = runtime.run(*(cupy.asarray(x) for x in inputs))
    assert isinstance(logits, cupy.ndarray)
    np.testing.assert_allclose(cupy.asnumpy(logits), _reference(artifact, inputs), atol=1e-3)


@pytest.mark.cuda
def test_onnxruntime_cuda_with_io_binding_matches_cpu(artifact, inputs):
    _require_cuda()
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("onnxruntime has no CUDA provider (CPU wheel installed)")
    runtime = RefinerRuntime(artifact, RuntimeConfig(backend="onnxruntime", device="cuda"))
    assert runtime.device == "cuda"
    logits = runtime.run(*(torch.from_numpy(x).cuda() for x in inputs))
    np.testing.assert_allclose(logits.cpu().numpy(), _reference(artifact, inputs), atol=1e-3)


@pytest.mark.cuda
def test_tensorrt_matches_cpu_reference(artifact, inputs):
    _require_cuda()
    if not tensorrt_usable():
        pytest.skip("tensorrt does not import (its libraries cannot be installed on the machines used so far)")
    runtime = RefinerRuntime(artifact, RuntimeConfig(backend="tensorrt"))
    logits = runtime.run(*(torch.from_numpy(x).cuda() for x in inputs))
    np.testing.assert_allclose(logits.cpu().numpy(), _reference(artifact, inputs), atol=0.1)


@pytest.mark.filterwarnings("ignore:.*LeafSpec.*:FutureWarning")  # torch's own deepcopy in run_decompositions
def test_batchnorm_folds_in_a_decomposed_program_too():
    model = _refiner_with_trained_batchnorm()
    image, prior = torch.randn(1, 3, *SIZE), 4 * torch.randn(1, 2, *SIZE)
    with torch.no_grad():
        program = torch.export.export(model, (image, prior)).run_decompositions()
    unfolded, folded = program.module(), program.module()
    legit = torch.ops.aten._native_batch_norm_legit_no_training.default
    assert sum(node.target == legit for node in unfolded.graph.nodes) == 18
    assert fold_batchnorm(folded) == 18
    assert not any(node.target == legit for node in folded.graph.nodes)
    with torch.no_grad():
        torch.testing.assert_close(folded(image, prior), unfolded(image, prior), atol=1e-4, rtol=0)
