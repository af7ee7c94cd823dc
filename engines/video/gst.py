"""Frames from a GStreamer pipeline that ends in `appsink`, through GStreamer's Python bindings (PyGObject, `gi`).

SDI capture cards reach Linux through GStreamer (`decklinkvideosrc` for Blackmagic DeckLink, `ajasrc` for AJA), not
V4L2. The pipeline string comes from the graph YAML, e.g. `decklinkvideosrc ! videoconvert ! appsink`; the appsink
is asked for RGB (put a `videoconvert` before it when the source gives anything else) and keeps at most two samples,
so a slow reader back-pressures the pipeline instead of queueing. The bindings are optional: `gst_missing()` says in
one line what to install when they are not importable, `missing_elements()` which elements no installed plugin
provides.
"""

from __future__ import annotations

import functools
import logging
import re
from types import SimpleNamespace
from typing import Any

import numpy as np

from surgseg.engines.errors import InputError

log = logging.getLogger(__name__)

INSTALL_HINT = ("`make system-extras` installs them: apt-get install gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0 "
                "gstreamer1.0-plugins-base gstreamer1.0-plugins-good libgirepository1.0-dev libcairo2-dev pkg-config, "
                "then .venv/bin/pip install PyGObject==3.50.2 pycairo==1.29.2")
ELEMENT_HINTS = {
    "decklinkvideosrc": "gstreamer1.0-plugins-bad and Blackmagic Desktop Video (the DeckLink driver)",
    "ajasrc": "AJA's GStreamer plugin (gst-aja, built against the AJA NTV2 SDK and driver)",
    "videoconvert": "gstreamer1.0-plugins-base",
    "videotestsrc": "gstreamer1.0-plugins-base",
    "appsink": "gstreamer1.0-plugins-base",
    "v4l2src": "gstreamer1.0-plugins-good",
}
APPSINK_AT_END = re.compile(r"(^|!)\s*appsink(\s+[^!]*)?$")


def check_pipeline_text(pipeline: Any, key: str) -> None:
    """InputError naming `key` unless `pipeline` is a non-empty GStreamer pipeline string ending in `appsink`."""
    if not isinstance(pipeline, str) or not pipeline.strip():
        raise InputError(f"{key}: expected a GStreamer pipeline such as 'videotestsrc ! videoconvert ! appsink'")
    if not APPSINK_AT_END.search(pipeline.strip()):
        raise InputError(f"{key}: the pipeline must end in 'appsink' (e.g. '... ! videoconvert ! appsink'), "
                         f"got {pipeline!r}")


def gst_missing() -> str | None:
    """One line naming what to install when GStreamer's Python bindings cannot be imported, else None."""
    try:
        gst()
    except (ImportError, ValueError) as exc:  # ValueError: gi is there but the Gst typelib is not
        return f"GStreamer's Python bindings are not importable ({exc}): {INSTALL_HINT}"
    return None


@functools.lru_cache(maxsize=1)
def gst() -> SimpleNamespace:
    """The initialised `Gst`, `GstApp`, `GstVideo` and `GLib` modules."""
    import ctypes
    import ctypes.util

    import gi

    # GStreamer brings libunwind into the global symbol scope; without libgcc_s there first, its `_Unwind_Resume`
    # serves every C++ exception thrown later in this process (torch, ONNX Runtime, Holoscan) and aborts it.
    ctypes.CDLL(ctypes.util.find_library("gcc_s") or "libgcc_s.so.1", mode=ctypes.RTLD_GLOBAL)

    for name in ("Gst", "GstApp", "GstVideo"):
        gi.require_version(name, "1.0")
    from gi.repository import GLib, Gst, GstApp, GstVideo

    Gst.init(None)
    return SimpleNamespace(Gst=Gst, GstApp=GstApp, GstVideo=GstVideo, GLib=GLib)


def missing_elements(pipeline: str, key: str) -> list[str]:
    """One line per element no installed plugin provides; InputError for a pipeline GStreamer cannot parse."""
    modules = gst()
    try:
        parsed = modules.Gst.parse_launch(pipeline)
    except modules.GLib.Error as exc:
        if exc.matches(modules.Gst.parse_error_quark(), modules.Gst.ParseError.NO_SUCH_ELEMENT):
            names = re.findall(r"no element \"([^\"]+)\"", exc.message) or [exc.message]
            return [f"{key}: GStreamer element '{name}' is not installed "
                    f"({ELEMENT_HINTS.get(name, f'find its plugin package: apt-cache search gstreamer {name}')})"
                    for name in names]
        raise InputError(f"{key}: GStreamer cannot parse the pipeline: {exc.message}") from None
    parsed.set_state(modules.Gst.State.NULL)
    return []


class GstReader:
    """Frames of a GStreamer pipeline's appsink as HxWx3 uint8 RGB; None at the end of the stream."""

    def __init__(self, pipeline: str, key: str, frame_timeout_s: float = 5.0) -> None:
        self.key = key
        self.frame_timeout_s = frame_timeout_s
        self.frames = 0
        modules = gst()
        self._gst = modules.Gst
        self._video = modules.GstVideo
        try:
            self._pipeline = self._gst.parse_launch(pipeline)
        except modules.GLib.Error as exc:
            raise InputError(f"{key}: GStreamer cannot build the pipeline: {exc.message}") from None
        self._sink = self._find_appsink()
        if self._sink.get_property("caps") is None:
            self._sink.set_property("caps", self._gst.Caps.from_string("video/x-raw,format=RGB"))
        for name, value in (("max-buffers", 2), ("drop", False), ("sync", False), ("emit-signals", False)):
            self._sink.set_property(name, value)

    def start(self) -> None:
        """Set the pipeline playing; InputError with GStreamer's message when it cannot (no device, no caps)."""
        result = self._pipeline.set_state(self._gst.State.PLAYING)
        if result == self._gst.StateChangeReturn.ASYNC:  # prerolling: a device that cannot open fails here
            result = self._pipeline.get_state(round(self.frame_timeout_s * self._gst.SECOND))[0]
        if result == self._gst.StateChangeReturn.FAILURE:
            error = self._bus_error()
            self.close()
            raise InputError(f"{self.key}: the pipeline does not start: {error or 'state change failed'}")

    def read(self) -> np.ndarray | None:
        """The next frame; None at end-of-stream, after a pipeline error (logged) or `frame_timeout_s` without one."""
        sample = self._sink.try_pull_sample(round(self.frame_timeout_s * self._gst.SECOND))
        if sample is None:
            if self._sink.is_eos():
                log.info("%s: end of stream after %d frames", self.key, self.frames)
            else:
                error = self._bus_error()
                log.error("%s: %s: ending the stream", self.key,
                          error or f"no frame for {self.frame_timeout_s:g} s")
            return None
        self.frames += 1
        return self._to_array(sample)

    def close(self) -> None:
        self._pipeline.set_state(self._gst.State.NULL)

    def _find_appsink(self) -> Any:
        sinks = []
        if isinstance(self._pipeline, self._gst.Bin):
            iterator = self._pipeline.iterate_sinks()
            while (step := iterator.next())[0] == self._gst.IteratorResult.OK:
                sinks.append(step[1])
        appsinks = [s for s in sinks if s.get_factory() is not None and s.get_factory().get_name() == "appsink"]
        if len(appsinks) != 1:
            raise InputError(f"{self.key}: the pipeline needs exactly one appsink, found {len(appsinks)}")
        return appsinks[0]

    def _to_array(self, sample: Any) -> np.ndarray:
        info = self._video.VideoInfo.new_from_caps(sample.get_caps())
        if info.finfo.format != self._video.VideoFormat.RGB:
            raise InputError(f"{self.key}: appsink caps give {info.finfo.name}, not RGB "
                             f"(leave appsink's caps unset or ask for format=RGB)")
        buffer = sample.get_buffer()
        ok, mapped = buffer.map(self._gst.MapFlags.READ)
        if not ok:
            raise RuntimeError(f"{self.key}: cannot map a GStreamer buffer")
        try:
            stride = info.stride[0]
            rows = np.frombuffer(mapped.data, np.uint8, count=stride * info.height).reshape(info.height, stride)
            return rows[:, : info.width * 3].reshape(info.height, info.width, 3).copy()
        finally:
            buffer.unmap(mapped)

    def _bus_error(self) -> str | None:
        message = self._pipeline.get_bus().pop_filtered(self._gst.MessageType.ERROR)
        if message is None:
            return None
        error, _debug = message.parse_error()
        return f"{message.src.get_name()}: {error.message}"
