"""GstSource: a GStreamer pipeline ending in appsink as a live source (with `videotestsrc` where GStreamer's Python
bindings are installed), and one-line reports of what is missing where they are not."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_sources import run

from surgseg.app.graph_spec import validate
from surgseg.engines.errors import InputError
from surgseg.engines.video import gst
from surgseg.operators.gst_source import GstSource, GstSourceConfig

needs_gst = pytest.mark.skipif(gst.gst_missing() is not None, reason=f"{gst.gst_missing()}")


@needs_gst
def test_videotestsrc_pipeline_arrives_as_rgb_frames_and_ends_at_end_of_stream() -> None:
    pipeline = "videotestsrc num-buffers=12 pattern=red ! video/x-raw,width=62,height=30 ! videoconvert ! appsink"
    app = run({"source": {"type": "GstSource", "pipeline": pipeline}, "sink": {"type": "Collector"}},
              [["source", "sink"]])
    source, frames = app.ops["source"], [m["frame"] for m in app.ops["sink"].messages]
    assert source.emitted + source.dropped == 12 == source.reader.frames  # not live: faster than the graph, drops
    assert len(frames) == source.emitted and frames[0].shape == (30, 62, 3)  # 62 px: rows padded to 188 bytes
    assert all(np.array_equal(frame.reshape(-1, 3).mean(0), [255, 0, 0]) for frame in frames)


@needs_gst
def test_missing_element_is_reported_naming_the_package() -> None:
    config = GstSourceConfig(pipeline="decklinkvideosrc ! videoconvert ! appsink")
    assert GstSource.missing_prerequisites(config, "operators.source") == [
        "operators.source.pipeline: GStreamer element 'decklinkvideosrc' is not installed "
        "(gstreamer1.0-plugins-bad and Blackmagic Desktop Video (the DeckLink driver))"]


@needs_gst
def test_pipeline_gstreamer_cannot_parse_is_an_input_error() -> None:
    with pytest.raises(InputError, match=r"operators\.source\.pipeline: GStreamer cannot parse the pipeline"):
        GstSource.missing_prerequisites(GstSourceConfig(pipeline="videotestsrc ! ! appsink"), "operators.source")


def test_missing_bindings_are_reported_in_one_line_naming_what_to_install(monkeypatch) -> None:
    def no_gi() -> None:
        raise ImportError("No module named 'gi'")

    monkeypatch.setattr(gst, "gst", no_gi)
    [line] = GstSource.missing_prerequisites(GstSourceConfig(pipeline="videotestsrc ! appsink"), "operators.source")
    assert line.startswith("operators.source: GStreamer's Python bindings are not importable (No module named 'gi')")
    assert "gir1.2-gstreamer-1.0" in line and "pip install PyGObject==" in line and "\n" not in line


def test_pipeline_not_ending_in_appsink_is_refused_naming_the_key() -> None:
    graph = {"operators": {"source": {"type": "GstSource", "pipeline": "videotestsrc ! autovideosink"},
                           "sink": {"type": "FrameCounterSink", "path": "counts.json"}},
             "flows": [["source", "sink"]]}
    with pytest.raises(InputError, match=r"operators\.source\.pipeline: the pipeline must end in 'appsink'"):
        validate(graph, Path("test.yaml"))


@needs_gst
def test_cpp_exceptions_still_unwind_after_gstreamer_is_loaded() -> None:
    """GStreamer loads libunwind globally; a C++ exception in ONNX Runtime afterwards must not abort the process."""
    code = ("from surgseg.engines.video.gst import gst; gst()\n"
            "import onnxruntime\n"
            "try:\n    onnxruntime.InferenceSession(b'not a model')\nexcept Exception as exc:\n    print('caught')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-500:]
    assert done.stdout.strip() == "caught"
