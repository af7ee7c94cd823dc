"""SAM 2 exported to ONNX: real-arithmetic RoPE, ONNX Runtime fp32/int8 streams vs torch, manifest checks."""

from __future__ import annotations

import dataclasses
import json
import shutil

import cv2
import numpy as np
import pytest
import torch

from sam2_clips import two_object_clip

from surgseg.app.cli import main
from surgseg.engines.errors import InputError
from surgseg.engines.sam2.backends import make_modules
from surgseg.engines.sam2.config import MemoryConfig, ModelConfig, RuntimeConfig, SAM2Config
from surgseg.engines.sam2.manifest import MANIFEST_NAME, ExportManifest
from surgseg.engines.sam2.model import build_sam2_model, official_state_dict
from surgseg.engines.sam2.onnx_parts import RealRoPEAttention, use_real_rope
from surgseg.engines.sam2.prompts import prompts_from_mask, save_prompts
from surgseg.engines.sam2.stream import StreamingSAM2
from surgseg.engines.sam2.weights import file_sha256

SIZE = 128
FRAMES = 30


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    """A checkpoint written here (random weights, seed 3), exported at 128 px through the CLI."""
    folder = tmp_path_factory.mktemp("sam2_export")
    checkpoint = folder / "sam2_test.pt"
    torch.save(official_state_dict(build_sam2_model(ModelConfig(image_size=SIZE, random_weights_seed=3))), checkpoint)
    out = folder / "exported"
    code = main(["export-sam2", "--model", "tiny", "--image-size", str(SIZE), "--checkpoint", str(checkpoint),
                 "--out", str(out)])
    assert code == 0
    model = ModelConfig(image_size=SIZE, checkpoint=str(checkpoint))
    return out, model, build_sam2_model(model)


def _config(model: ModelConfig, **runtime) -> SAM2Config:
    return SAM2Config(num_classes=3, model=model, memory=MemoryConfig(every=5, max_memories=6, max_cond_frames=1),
                      runtime=RuntimeConfig(**runtime))


def _stream(engine: StreamingSAM2) -> list[torch.Tensor]:
    """30 frames, K=5, N=6: a re-prompt at frame 12 and a mask condition at 18 (both become ordinary memories with
    M=1), so seven memories are written and the bank prunes."""
    frames, masks = two_object_clip(FRAMES, speed=(1, 1))
    outputs = [engine.seed(frames[0], prompts_from_mask(masks[0], 3)).logits]
    for t in range(1, FRAMES):
        outputs.append(engine.step(frames[t]).logits)
        if t == 12:
            outputs.append(engine.reprompt(prompts_from_mask(masks[t], 3)).logits)
        if t == 18:
            outputs.append(engine.condition_on_mask(masks[t]).logits)
    engine.step(frames[-1])
    assert engine.memory_state()[1]["memory_frames"] == [10, 12, 15, 18, 20, 25]  # frame 5 pruned
    return outputs


@pytest.fixture(scope="module")
def torch_stream(export) -> list[torch.Tensor]:
    _, model_config, model = export
    return _stream(StreamingSAM2(_config(model_config), model=model))


@pytest.fixture(scope="module")
def ort_stream(export) -> list[torch.Tensor]:
    folder, model_config, model = export
    return _stream(StreamingSAM2(_config(model_config, backend="onnxruntime", exported=str(folder)), model=model))


def test_real_arithmetic_rope_equals_complex_rope() -> None:
    model = build_sam2_model(ModelConfig(image_size=SIZE))
    gen = torch.Generator().manual_seed(1)
    hw, dim, mem_dim = (SIZE // 16) ** 2, model.hidden_dim, model.mem_dim
    curr, curr_pos = torch.randn(hw, 1, dim, generator=gen), torch.randn(hw, 1, dim, generator=gen)
    memory, memory_pos = torch.randn(3 * hw + 12, 1, mem_dim, generator=gen), torch.randn(3 * hw + 12, 1, mem_dim)
    with torch.no_grad():
        complex_out = model.memory_attention([curr], memory, [curr_pos], memory_pos, num_obj_ptr_tokens=12)
        use_real_rope(model)
        real_out = model.memory_attention([curr], memory, [curr_pos], memory_pos, num_obj_ptr_tokens=12)
    assert isinstance(model.memory_attention.layers[0].cross_attn_image, RealRoPEAttention)
    assert float((real_out - complex_out).abs().max()) < 1e-5


@pytest.mark.slow
def test_checkpoint_sha256_lands_in_the_manifest(export) -> None:
    folder, model_config, _ = export
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    assert manifest["weights"] == f"sha256:{file_sha256(model_config.checkpoint)}"
    assert (manifest["model"], manifest["image_size"], manifest["opset"]) == ("sam2.1_hiera_tiny", SIZE, 17)
    for entry in manifest["files"].values():
        assert entry["sha256"] == file_sha256(folder / entry["name"])


@pytest.mark.slow
def test_onnxruntime_fp32_stream_equals_torch(torch_stream, ort_stream) -> None:
    assert len(ort_stream) == len(torch_stream) == FRAMES + 2
    worst = max(float((a - b).abs().max()) for a, b in zip(torch_stream, ort_stream))
    assert worst < 1e-3


@pytest.mark.slow
def test_int8_masks_agree_with_fp32_on_every_frame(export, ort_stream) -> None:
    folder, model_config, model = export
    int8 = _stream(StreamingSAM2(_config(model_config, backend="onnxruntime", precision="int8",
                                         exported=str(folder)), model=model))
    ious = []
    for ref, got in zip(ort_stream, int8):
        for a, b in zip(ref > 0, got > 0):
            union = int((a | b).sum())
            ious.append(1.0 if union == 0 else int((a & b).sum()) / union)
    assert min(ious) >= 0.95, f"int8 vs fp32 mask IoU per frame/class: min {min(ious):.3f}"


@pytest.mark.parametrize("change, key", [
    ({"image_size": 160}, "image_size 128 != configured 160"),
    ({"name": "sam2_hiera_tiny"}, "model sam2.1_hiera_tiny != configured sam2_hiera_tiny"),
    ({"checkpoint": None}, "weights"),
])
@pytest.mark.slow
def test_manifest_of_another_model_is_refused_naming_the_file(export, change, key) -> None:
    folder, model_config, model = export
    config = _config(dataclasses.replace(model_config, **change), backend="onnxruntime", exported=str(folder))
    with pytest.raises(InputError) as info:
        make_modules(model, config)
    message = str(info.value)
    assert message.startswith(str(folder / MANIFEST_NAME)) and key in message and "\n" not in message


@pytest.mark.slow
def test_manifest_without_the_backend_is_refused(export, tmp_path) -> None:
    folder, model_config, model = export
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    payload = json.loads((copy / MANIFEST_NAME).read_text())
    payload["backends"] = ["onnxruntime"]
    (copy / MANIFEST_NAME).write_text(json.dumps(payload))
    with pytest.raises(InputError, match="backend 'tensorrt' not among"):
        ExportManifest.load(copy).check(model_config, "tensorrt", "fp16")
    with pytest.raises(InputError, match="precision 'fp16' not available with onnxruntime"):
        ExportManifest.load(copy).check(model_config, "onnxruntime", "fp16")


@pytest.mark.parametrize(("edit", "message"), [
    ({"image_size": "big"}, r"sam2_export.json: image_size: input should be a valid integer"),
    ({"files": {"image_encoder": {"name": "../x.onnx", "sha256": "0"}}}, r"sam2_export.json: files.image_encoder.name"),
    ({"schema_version": 9}, r"sam2_export.json: schema_version: 9 unsupported"),
    ({"extra": 1}, r"sam2_export.json: extra: unknown parameter"),
])
def test_a_malformed_manifest_is_refused_naming_the_file_and_key(export, tmp_path, edit, message) -> None:
    folder, _, _ = export
    payload = {**json.loads((folder / MANIFEST_NAME).read_text()), **edit}
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(payload))
    with pytest.raises(InputError, match=message):
        ExportManifest.load(tmp_path)


def test_tensorrt_backend_without_tensorrt_is_refused_in_one_line(export) -> None:
    folder, model_config, model = export
    config = _config(model_config, backend="tensorrt", precision="fp16", exported=str(folder))
    with pytest.raises(InputError, match="runtime.backend: 'tensorrt' (runs on a CUDA device|needs)"):
        make_modules(model, config)


def _prior_dataset(root) -> None:
    """Two 60x80 frames with a disc each, their index and saved prompts."""
    rows = []
    frames, masks = two_object_clip(2, (60, 80), speed=(1, 1))
    for i, (frame, mask) in enumerate(zip(frames, masks)):
        binary = (mask == 1).astype(np.uint8)
        for kind, image in (("images", frame), ("masks", binary)):
            (root / kind).mkdir(exist_ok=True)
            cv2.imwrite(str(root / kind / f"f{i}.png"), image)
        save_prompts(root / "prompts" / f"f{i}.prompts.json", prompts_from_mask(binary, 2))
        rows.append({"image_path": f"images/f{i}.png", "mask_path": f"masks/f{i}.png", "video_id": "v",
                     "frame_id": i, "split": "train"})
    (root / "dataset.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.mark.slow
def test_priors_from_the_export_equal_torch_priors_and_a_wrong_size_exits_2(export, tmp_path) -> None:
    folder, model_config, _ = export
    _prior_dataset(tmp_path)
    common = ["priors", "--index", str(tmp_path / "dataset.jsonl"), "--prompts", str(tmp_path / "prompts"),
              "--checkpoint", model_config.checkpoint, "--num-classes", "2"]
    assert main([*common, "--size", str(SIZE), "--out", str(tmp_path / "torch")]) == 0
    assert main([*common, "--size", str(SIZE), "--out", str(tmp_path / "ort"), "--backend", "onnxruntime",
                 "--exported", str(folder)]) == 0
    for i in range(2):
        a, b = (np.load(tmp_path / kind / f"f{i}.npy").astype(np.float32) for kind in ("torch", "ort"))
        assert np.abs(a - b).max() < 1e-2
    assert main([*common, "--size", "160", "--out", str(tmp_path / "wrong"), "--backend", "onnxruntime",
                 "--exported", str(folder)]) == 2


@pytest.mark.slow
def test_tensorrt_profiles_cover_the_memory_bounds(export) -> None:
    from surgseg.engines.sam2.trt_modules import profiles

    folder, _, model = export
    memory = MemoryConfig(every=5, max_memories=6, max_cond_frames=4, max_obj_ptrs=16)
    shapes = profiles(ExportManifest.load(folder), memory, model.mem_dim, model.hidden_dim)
    hw, split = (SIZE // 16) ** 2, model.hidden_dim // model.mem_dim
    low, _, high = shapes["memory_attention"]["memory"]
    assert (low[0], high[0]) == (hw, (4 + 6) * hw)
    assert shapes["memory_attention"]["ptr_pos"][2][0] == split * (4 + 16)
    assert set(shapes) == {"memory_attention", "heads", "heads_multimask"}
