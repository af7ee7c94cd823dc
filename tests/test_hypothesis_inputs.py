"""Property-based tests over every text/array input surgseg reads: each must be accepted or refused with one
`InputError` line naming the file or key; any other exception type is a bug.

Deterministic (`derandomize=True`, no example database) and small, so the suite stays fast; the long search is
`make fuzz` (benchmarks/fuzz.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from surgseg.engines.errors import InputError

pytestmark = pytest.mark.filterwarnings("error")

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-2**65, 2**65), st.floats(allow_nan=True),
                    st.text(max_size=12))
NUMBER_TEXT = st.one_of(st.floats(allow_nan=True).map(str), st.sampled_from(["nan", "inf", "-inf", "1e999", "7"]))
YAML_VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                            st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                           max_leaves=12)
SMOKE = {"name": "smoke", "device": "cpu", "scheduler": {"type": "greedy"},
         "operators": {"source": {"type": "TestPatternSource", "size": [48, 64], "frames": 5},
                       "relay": {"type": "PassThrough"},
                       "sink": {"type": "FrameCounterSink", "path": "counts.json"}},
         "flows": [["source", "relay"], ["relay", "sink"]]}


def refused_cleanly(call: Callable[[], Any], names: str) -> None:
    """`call()` returns, or raises InputError with a one-line message that mentions `names`."""
    try:
        call()
    except InputError as exc:
        message = str(exc)
        assert "\n" not in message and names in message, message


def scratch(tmp_path_factory: pytest.TempPathFactory, name: str, data: bytes | str) -> Path:
    path = tmp_path_factory.mktemp("hyp") / name
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    path.write_bytes(data)
    return path


def replace_somewhere(tree: Any, path: list[int], value: Any) -> Any:
    """`tree` with the node reached by the index choices in `path` replaced by `value`."""
    if not path or not isinstance(tree, (dict, list)) or not tree:
        return value
    keys = list(tree) if isinstance(tree, dict) else list(range(len(tree)))
    key = keys[path[0] % len(keys)]
    copy = dict(tree) if isinstance(tree, dict) else list(tree)
    copy[key] = replace_somewhere(tree[key], path[1:], value)
    return copy


# ------------------------------------------------------------------------------------------------ graph YAML
@SETTINGS
@given(path=st.lists(st.integers(0, 50), max_size=4), value=YAML_VALUES)
def test_graph_yaml_with_any_value_anywhere_is_loaded_or_refused_naming_a_key(tmp_path_factory, path, value):
    from surgseg.app.graph_spec import load_graph

    graph = replace_somewhere(SMOKE, path, value)
    file = scratch(tmp_path_factory, "graph.yaml", yaml.safe_dump(graph, allow_unicode=True))
    refused_cleanly(lambda: load_graph(file), "")


@SETTINGS
@given(text=st.text(max_size=300))
def test_graph_yaml_of_any_text_is_refused_naming_the_file_or_a_key(tmp_path_factory, text):
    from surgseg.app.graph_spec import load_graph

    file = scratch(tmp_path_factory, "graph.yaml", text)
    refused_cleanly(lambda: load_graph(file), ":")


@SETTINGS
@given(key=st.sampled_from(["operators.source.size", "operators.source.frames", "operators.sink.path", "scheduler.type",
                            "scheduler.workers", "device", "flows", "operators.relay.type", "name", "operators"]),
       suffix=st.text(max_size=8), value=st.text(max_size=40))
def test_set_override_of_any_value_is_applied_or_refused_naming_the_key(tmp_path_factory, key, suffix, value):
    from surgseg.app.graph_spec import load_graph

    file = scratch(tmp_path_factory, "graph.yaml", yaml.safe_dump(SMOKE))
    refused_cleanly(lambda: load_graph(file, [f"{key}{suffix}={value}"]), "")


# ------------------------------------------------------------------------------------------------ seeds
@SETTINGS
@given(box=st.one_of(st.lists(st.floats(allow_nan=True), min_size=4, max_size=4),
                     st.lists(st.floats(allow_nan=True), max_size=6)),
       points=st.lists(st.lists(st.one_of(st.floats(allow_nan=True), st.integers(-3, 3)), max_size=4), max_size=3),
       class_id=st.integers(-2, 5))
def test_seed_box_and_points_become_prompts_or_are_refused(box, points, class_id):
    from surgseg.engines.letterbox import letterbox_geometry
    from surgseg.engines.sam2.seeding import box_prompts

    geometry = letterbox_geometry((48, 64), (32, 32))
    refused_cleanly(lambda: box_prompts(tuple(box), [tuple(p) for p in points], class_id, 3, geometry), "seed.")


@SETTINGS
@given(header=st.sampled_from(["frame,class,x,y,label", "frame,class,x,y", "x,y", ""]),
       rows=st.lists(st.one_of(st.lists(st.text(max_size=6), max_size=6),
                               st.tuples(st.integers(-1, 3), st.integers(-1, 3), NUMBER_TEXT, NUMBER_TEXT,
                                         st.integers(-1, 2)).map(lambda row: [str(v) for v in row])), max_size=5),
       raw=st.binary(max_size=40))
def test_clicks_file_of_any_content_is_read_or_refused_naming_it(tmp_path_factory, header, rows, raw):
    from surgseg.engines.letterbox import letterbox_geometry
    from surgseg.engines.sam2.seeding import click_prompts, read_clicks

    text = "\n".join([header, *(",".join(row) for row in rows)])
    file = scratch(tmp_path_factory, "clicks.csv", text.encode("utf-8", "surrogatepass") + raw)

    def read_and_place() -> None:
        for clicks in read_clicks(file, 3).values():
            click_prompts(clicks, 3, letterbox_geometry((48, 64), (32, 32)))

    refused_cleanly(read_and_place, str(file))


@SETTINGS
@given(path=st.lists(st.integers(0, 50), max_size=5), value=YAML_VALUES)
def test_prompts_file_with_any_value_anywhere_is_read_or_refused_naming_it(tmp_path_factory, path, value):
    from surgseg.engines.sam2.prompts import load_prompts

    valid = {"schema_version": 1, "height": 48, "width": 64, "num_classes": 3,
             "classes": {"1": [{"box": [1, 2, 30, 40], "points": [[5, 6]], "labels": [1], "area": 9}]}}
    file = scratch(tmp_path_factory, "p.json", json.dumps(replace_somewhere(valid, path, value)))
    refused_cleanly(lambda: load_prompts(file), str(file))


@SETTINGS
@given(data=st.binary(max_size=200), keep=st.integers(0, 400))
def test_seed_mask_of_any_bytes_is_read_or_refused_naming_it(tmp_path_factory, data, keep):
    import cv2

    from surgseg.engines.sam2.seeding import read_mask

    mask = np.zeros((12, 16), np.uint8)
    mask[3:9, 4:10] = 1
    png = cv2.imencode(".png", mask)[1].tobytes()
    file = scratch(tmp_path_factory, "seed.png", png[:keep] + data)
    refused_cleanly(lambda: read_mask(file, 2), str(file))


# ------------------------------------------------------------------------------------------------ colour maps, masks
@SETTINGS
@given(path=st.lists(st.integers(0, 50), max_size=4), value=YAML_VALUES)
def test_colour_map_with_any_value_anywhere_is_read_or_refused_naming_it(tmp_path_factory, path, value):
    from surgseg.training.masks import load_colour_map

    valid = {"classes": [{"id": 0, "name": "background", "colour": [0, 0, 0]},
                         {"id": 1, "name": "tool", "colour": [255, 0, 0]}]}
    file = scratch(tmp_path_factory, "colours.yaml", yaml.safe_dump(replace_somewhere(valid, path, value),
                                                                     allow_unicode=True))
    refused_cleanly(lambda: load_colour_map(file), str(file))


@SETTINGS
@given(text=st.text(max_size=200))
def test_colour_map_of_any_text_is_refused_on_one_line(tmp_path_factory, text):
    from surgseg.training.masks import load_colour_map

    file = scratch(tmp_path_factory, "colours.yaml", text)
    refused_cleanly(lambda: load_colour_map(file), str(file))


MASK_DTYPES = st.sampled_from([np.uint8, np.uint16, np.int32])


@SETTINGS
@given(height=st.integers(1, 24), width=st.integers(1, 24), rgb=st.booleans(), dtype=MASK_DTYPES,
       values=st.lists(st.integers(0, 65535), min_size=1, max_size=6), num_classes=st.integers(2, 5),
       seed=st.integers(0, 2**16))
def test_mask_pixels_of_any_kind_standardise_or_are_refused_naming_the_file(height, width, rgb, dtype, values,
                                                                            num_classes, seed):
    from surgseg.training.masks import standardise_mask

    top = np.iinfo(dtype).max if dtype != np.int32 else 70000
    shape = (height, width, 3) if rgb else (height, width)
    raw = np.random.default_rng(seed).choice(np.array(values) % (top + 1), shape).astype(dtype)
    refused_cleanly(lambda: standardise_mask(raw, "masks/m.png", num_classes), "masks/m.png")


# ------------------------------------------------------------------------------------------------ index JSONL
@SETTINGS
@given(rows=st.lists(st.one_of(YAML_VALUES, st.fixed_dictionaries({"image_path": SCALARS, "mask_path": SCALARS})),
                     max_size=4),
       tail=st.binary(max_size=20))
def test_index_jsonl_of_any_rows_is_read_or_refused_naming_it(tmp_path_factory, rows, tail):
    from surgseg.training.dataset_index import read_index

    text = "\n".join(json.dumps(row) for row in rows)
    file = scratch(tmp_path_factory, "dataset.jsonl", text.encode() + tail)
    refused_cleanly(lambda: read_index(file), str(file))
