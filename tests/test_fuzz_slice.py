"""A short deterministic slice of the fuzzing campaign (`make fuzz` runs the long one), the regression tests of
what the campaign found, and "one line means one line": a damaged video through `surgseg run` prints surgseg's
line without Holoscan's own account of the failure or the CPU-only CUDA warnings.
"""

from __future__ import annotations

import json
import math
import random
import re
import struct
from pathlib import Path

import numpy as np
import pytest
from graph_helpers import write_graph
from PIL import Image

from benchmarks.fuzz import judge_output, run_case
from benchmarks.fuzz_cases import KINDS, PROCESS_KINDS, Context, surgseg_process
from benchmarks.fuzz_media import claimed_size_png, write_seeds
from surgseg.engines.errors import InputError

SLICE_CASES = 12
IN_PROCESS_KINDS = [kind for kind in KINDS if kind not in PROCESS_KINDS]


@pytest.fixture(scope="module")
def context(tmp_path_factory: pytest.TempPathFactory) -> Context:
    folder = tmp_path_factory.mktemp("fuzz")
    return Context(seeds=write_seeds(folder / "seeds", big=False)["rgb.png"].parent, artifact=folder / "no-refiner.onnx",
                   work=folder / "work")


@pytest.mark.parametrize("kind", IN_PROCESS_KINDS)
def test_fuzz_slice_ends_clean(context: Context, kind: str) -> None:
    unclean = {n: outcome.reason for n in range(SLICE_CASES)
               if not (outcome := run_case(kind, n, seed=0, ctx=context)).clean}
    assert unclean == {}


def test_fuzzed_graph_check_exits_2_with_one_line(context: Context) -> None:
    outcome = KINDS["cli_graph_check"](random.Random(3), context)
    assert outcome.clean, outcome.reason


# ------------------------------------------------------------------------------------------------ one line
def truncated_faststart_mp4(folder: Path) -> Path:
    import av

    path = folder / "full.mp4"
    with av.open(str(path), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(30):
            frame = np.random.default_rng(i).integers(0, 255, (48, 64, 3), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    data = path.read_bytes()
    truncated = folder / "truncated.mp4"
    truncated.write_bytes(data[: len(data) // 2])
    return truncated


def video_graph(clip: Path, out: Path) -> dict:
    return {"name": "one_line", "device": "cpu", "scheduler": {"type": "greedy"},
            "operators": {"source": {"type": "VideoFileSource", "path": str(clip)},
                          "relay": {"type": "PassThrough"},
                          "video": {"type": "VideoFileSink", "path": str(out)}},
            "flows": [["source", "relay"], ["relay", "video"]]}


def test_truncated_mp4_prints_surgseg_line_alone_and_keeps_the_output_playable(tmp_path: Path) -> None:
    out = tmp_path / "out" / "overlay.mp4"
    graph = write_graph(tmp_path, video_graph(truncated_faststart_mp4(tmp_path), out))
    code, stderr = surgseg_process(["run", str(graph)], timeout=120)
    assert code == 2
    assert "gxf" not in stderr and "CUDA" not in stderr and "At:" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and re.search(r"truncated\.mp4: frame \d+: file ends early", errors[0]), stderr
    assert judge_output(code, stderr, out.parent, None, video=out).clean


def test_verbose_run_shows_holoscans_own_lines(tmp_path: Path) -> None:
    graph = write_graph(tmp_path, video_graph(truncated_faststart_mp4(tmp_path), tmp_path / "o.mp4"))
    code, stderr = surgseg_process(["-v", "run", str(graph)], timeout=120)
    assert code == 2
    assert "Exception occurred for operator: 'source'" in stderr and "GXF_FAILURE" in stderr


def test_holoscan_lines_are_shown_when_surgseg_reports_no_failure(capsys: pytest.CaptureFixture) -> None:
    from surgseg.operators.holoscan_loader import _release, nvidia_driver_present

    cuda = "[warning] [gxf_cuda.cpp:33] ... failed with 'CUDA driver version is insufficient for CUDA runtime version'"
    _release(["[error] [program.cpp:1] a real problem", cuda], failed=False)
    shown = capsys.readouterr().err
    assert "a real problem" in shown and ("insufficient" in shown) == nvidia_driver_present()
    _release(["[error] [gxf_wrapper.cpp:146] Exception occurred for operator: 'source'"], failed=True)
    assert capsys.readouterr().err == ""


def test_usage_error_is_one_line_and_exit_2() -> None:
    code, stderr = surgseg_process(["data", "index", "--images", "x", "--masks", "y", "--num-classes", "two"], 60)
    assert code == 2
    assert stderr.count("\n") == 1 and "argument --num-classes: invalid int value: 'two'" in stderr


# ------------------------------------------------------------------------------------------------ regressions
def test_mp4_cut_before_its_codec_parameters_is_refused_naming_it(tmp_path: Path) -> None:
    from surgseg.engines.video.io import probe

    data = (truncated_faststart_mp4(tmp_path).parent / "full.mp4").read_bytes()
    plain = tmp_path / "cut.mp4"
    plain.write_bytes(data[:700])  # the index (moov) is cut inside its sample description
    with pytest.raises(InputError, match=r"cut\.mp4: "):
        probe(plain)


def test_index_that_is_not_utf8_is_refused_naming_it(tmp_path: Path) -> None:
    from surgseg.training.dataset_index import read_index

    index = tmp_path / "dataset.jsonl"
    index.write_bytes(b'{"image_path": "a.png", "mask_path": "\x87"}\n')
    with pytest.raises(InputError, match=r"dataset\.jsonl: not a UTF-8 text file"):
        read_index(index)


@pytest.mark.parametrize("value", [5, [1], None, ""])
def test_index_row_whose_path_is_not_text_is_refused_with_its_line(tmp_path: Path, value) -> None:
    from surgseg.training.dataset_index import read_index

    index = tmp_path / "dataset.jsonl"
    index.write_text(json.dumps({"image_path": "a.png", "mask_path": value}) + "\n")
    with pytest.raises(InputError, match=r"dataset\.jsonl:1: row needs image_path and mask_path"):
        read_index(index)


def test_damaged_seed_mask_is_refused_without_libpng_output(tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    from surgseg.engines.sam2.seeding import read_mask

    path = tmp_path / "seed.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 2, (64, 64), dtype=np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:300])  # the pixel data cut short
    with pytest.raises(InputError, match=r"seed\.png: cannot read the seed mask"):
        read_mask(path, 2)
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize("content", [b"frame,class,x,y,label\n0,1,\x875,6,1\n", b"frame,class,x,y,label\n0,1,\x00,6,1\n",
                                     b"frame,class,x,y,label\n0,1,nan,6,1\n", b"frame,class,x,y,label\n0,1,5,inf,1\n"])
def test_clicks_file_with_bad_bytes_or_numbers_is_refused_naming_it(tmp_path: Path, content: bytes) -> None:
    from surgseg.engines.sam2.seeding import read_clicks

    path = tmp_path / "clicks.csv"
    path.write_bytes(content)
    with pytest.raises(InputError, match=r"clicks\.csv"):
        read_clicks(path, 2)


@pytest.mark.parametrize(("box", "points"), [((math.nan, 0, 5, 5), []), ((0, 0, math.inf, 5), []),
                                             ((0, 0, 5, 5), [(math.nan, 1, 1)])])
def test_seed_box_or_point_that_is_not_finite_is_refused(box, points) -> None:
    from surgseg.engines.letterbox import letterbox_geometry
    from surgseg.engines.sam2.seeding import box_prompts

    with pytest.raises(InputError, match=r"seed\.(box|points)"):
        box_prompts(box, points, 1, 2, letterbox_geometry((48, 64), (32, 32)))


def test_colour_map_with_a_yaml_error_is_refused_on_one_line(tmp_path: Path) -> None:
    from surgseg.training.masks import load_colour_map

    path = tmp_path / "colours.yaml"
    path.write_text("classes:\n  - id: 0\n   colour: [0, 0, 0]\n")
    with pytest.raises(InputError) as refused:
        load_colour_map(path)
    assert "\n" not in str(refused.value) and "colours.yaml: not a colour map" in str(refused.value)


def test_prompts_with_an_infinite_coordinate_are_refused_naming_the_file(tmp_path: Path) -> None:
    from surgseg.engines.sam2.prompts import load_prompts

    path = tmp_path / "p.json"
    path.write_text('{"schema_version": 1, "height": 4, "width": 4, "num_classes": 2, '
                    '"classes": {"1": [{"box": [0, 0, Infinity, 1], "points": [], "labels": []}]}}')
    with pytest.raises(InputError, match=r"p\.json"):
        load_prompts(path)


@pytest.mark.parametrize("side", [12000, 30000])
def test_picture_claiming_a_huge_size_is_refused_without_a_warning(tmp_path: Path, side: int,
                                                                  capfd: pytest.CaptureFixture) -> None:
    from surgseg.engines.video.image_folder import read_image
    from surgseg.training.dataset_index import read_image_rgb
    from surgseg.training.masks import read_mask

    path = tmp_path / "huge.png"
    path.write_bytes(claimed_size_png(side, side))
    for reader in (read_image, read_image_rgb, read_mask):
        with pytest.raises(InputError, match=r"huge\.png: .*claims more than"):
            reader(path)
    assert capfd.readouterr().err == ""


def test_truncated_tiff_is_refused_not_warned_about(tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    from surgseg.engines.video.image_folder import read_image

    path = tmp_path / "frame.tif"
    Image.fromarray(np.arange(48 * 64, dtype=np.uint16).reshape(48, 64)).save(path)
    path.write_bytes(path.read_bytes()[:3000])
    with pytest.raises(InputError, match=r"frame\.tif: broken or unreadable picture"):
        read_image(path)
    assert capfd.readouterr().err == ""


def test_tiff_with_absurd_samples_per_pixel_gives_one_error_line(tmp_path: Path) -> None:
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(images / "a.png")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(masks / "a.tif")
    data = bytearray((masks / "a.tif").read_bytes())
    entries = struct.unpack_from("<H", data, struct.unpack_from("<I", data, 4)[0])[0]
    first = struct.unpack_from("<I", data, 4)[0] + 2
    for i in range(entries):  # SamplesPerPixel (tag 277) := 122
        if struct.unpack_from("<H", data, first + 12 * i)[0] == 277:
            struct.pack_into("<H", data, first + 12 * i + 8, 122)
    (masks / "a.tif").write_bytes(bytes(data))
    code, stderr = surgseg_process(["data", "index", "--images", str(images), "--masks", str(masks),
                                    "--out", str(tmp_path / "out" / "dataset.jsonl")], 60)
    assert code == 2
    assert [line for line in stderr.splitlines() if line.strip()] == \
        [line for line in stderr.splitlines() if " ERROR surgseg: " in line and "a.tif" in line], stderr
    assert not (tmp_path / "out" / "dataset.jsonl").exists()


@pytest.mark.parametrize("item", ["na\nme=x", "operators.sink.pa\tth=x", "\no"])
def test_set_key_with_a_control_character_is_refused_on_one_line(tmp_path: Path, item: str) -> None:
    from surgseg.app.graph_spec import load_graph

    graph = write_graph(tmp_path, video_graph(tmp_path / "clip.mp4", tmp_path / "out.mp4"))
    with pytest.raises(InputError, match=r"^--set .*: the key holds a control character") as refused:
        load_graph(graph, [item], check_paths=False)
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize("classes", ["0", "1", "-3", "300"])
def test_data_index_refuses_a_class_count_it_cannot_hold_naming_the_option(tmp_path: Path, classes: str,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    from surgseg.app.cli import main

    assert main(["data", "index", "--images", str(tmp_path), "--masks", str(tmp_path), "--num-classes", classes]) == 2
    assert f"--num-classes: expected 2..256 (background included), got {classes}" in caplog.text


def test_zero_length_png_is_refused_naming_it(tmp_path: Path) -> None:
    from surgseg.engines.video.image_folder import read_image

    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(InputError, match=r"empty\.png: broken or unreadable picture"):
        read_image(tmp_path / "empty.png")

