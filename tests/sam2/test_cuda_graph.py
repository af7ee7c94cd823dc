"""EncoderGraph: SAM 2's image encoder replayed from a CUDA graph equals eager; refused off CUDA."""

from __future__ import annotations

import pytest
import torch

from surgseg.engines.errors import InputError
from surgseg.engines.sam2.cuda_graph import EncoderGraph, map_tensors

SIZE = 256


class _CpuEncoder(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)

    def forward_image(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"vision_features": self.conv(image)}


def _require_cuda() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")


def _sam2(device: str) -> torch.nn.Module:
    from surgseg.engines.sam2.config import ModelConfig
    from surgseg.engines.sam2.model import build_sam2_model

    return build_sam2_model(ModelConfig(image_size=SIZE), device)


def _flat(output) -> list[torch.Tensor]:
    tensors: list[torch.Tensor] = []
    map_tensors(output, lambda t: tensors.append(t) or t)
    return tensors


def test_model_on_cpu_is_refused_with_a_clear_error():
    with pytest.raises(InputError, match=r"CUDA graphs need the SAM 2 model on a CUDA device, got cpu"):
        EncoderGraph(_CpuEncoder())


def test_map_tensors_reaches_every_tensor_in_nested_outputs():
    output = {"a": torch.ones(2), "b": [torch.zeros(1), (torch.full((1,), 3.0),)], "c": "kept"}
    doubled = map_tensors(output, lambda t: t * 2)
    assert doubled["a"].tolist() == [2.0, 2.0] and doubled["b"][1][0].item() == 6.0 and doubled["c"] == "kept"
    assert isinstance(doubled["b"], list) and isinstance(doubled["b"][1], tuple)


@pytest.mark.cuda
def test_bf16_graph_replay_equals_eager_encoder():
    _require_cuda()
    model = _sam2("cuda")
    images = [torch.randn(1, 3, SIZE, SIZE, device="cuda") for _ in range(2)]
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
        eager = [_flat(model.forward_image(image)) for image in images]
    graph = EncoderGraph(model, torch.bfloat16)
    replayed = [_flat(graph(image)) for image in images]
    for want_frame, got_frame in zip(eager, replayed):
        assert len(want_frame) == len(got_frame) >= 3
        for want, got in zip(want_frame, got_frame):
            torch.testing.assert_close(got.float(), want.float(), atol=3e-2, rtol=3e-2)
    assert not torch.equal(replayed[0][0], replayed[1][0])  # cloned: the second replay left the first intact


@pytest.mark.cuda
def test_static_outputs_are_overwritten_by_the_next_replay():
    _require_cuda()
    graph = EncoderGraph(_sam2("cuda"), torch.bfloat16, clone_outputs=False)
    first = _flat(graph(torch.randn(1, 3, SIZE, SIZE, device="cuda")))[0]
    kept = first.clone()
    second = _flat(graph(torch.randn(1, 3, SIZE, SIZE, device="cuda")))[0]
    assert first.data_ptr() == second.data_ptr() and not torch.equal(first, kept)


@pytest.mark.cuda
def test_streaming_step_with_the_encoder_graph_matches_eager():
    _require_cuda()
    import numpy as np

    from surgseg.engines.sam2.config import ModelConfig, RuntimeConfig, SAM2Config
    from surgseg.engines.sam2.prompts import prompts_from_mask
    from surgseg.engines.sam2.stream import StreamingSAM2

    model = _sam2("cuda")
    eager, graphed = (StreamingSAM2(SAM2Config(model=ModelConfig(image_size=SIZE),
                                               runtime=RuntimeConfig(precision="bf16", cuda_graph=graph)),
                                    device="cuda", model=model) for graph in (False, True))
    assert graphed.modules.forward_image is not model.forward_image
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8) for _ in range(3)]
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[80:160, 90:170] = 1
    prompts = prompts_from_mask(mask, 2)
    outputs = [engine.seed(frames[0], prompts) for engine in (eager, graphed)]
    for frame in frames[1:]:
        outputs = [engine.step(frame) for engine in (eager, graphed)]
    want, got = (out.logits.float().cpu().numpy() for out in outputs)
    np.testing.assert_allclose(got, want, rtol=0, atol=0.05 * float(np.abs(want).max()) + 1e-3)
