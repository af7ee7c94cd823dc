"""Which `type:` names a graph YAML may use: our operators, Holoscan's built-ins, and explicit plugins.

A name resolves only through this table: a YAML file can never make us import an arbitrary module. A graph may
extend the table with `plugins: [module, ...]`; each such module must define `SURGSEG_OPERATORS`, a dict of
name → operator class.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from typing import Any

from surgseg.engines.errors import InputError

# name → "module:Class" (imported only when a graph uses it, so a missing optional dependency of one
# operator never breaks graphs that don't use it)
OPERATORS: dict[str, str] = {
    "VideoFileSource": "surgseg.operators.video_file_source:VideoFileSource",
    "ImageFolderSource": "surgseg.operators.image_folder_source:ImageFolderSource",
    "SyntheticSource": "surgseg.operators.synthetic_source:SyntheticSource",
    "V4L2Source": "surgseg.operators.v4l2_source:V4L2Source",
    "StreamSource": "surgseg.operators.stream_source:StreamSource",
    "GstSource": "surgseg.operators.gst_source:GstSource",
    "StreamSink": "surgseg.operators.stream_sink:StreamSink",
    "TensorToFrame": "surgseg.operators.tensor_to_frame:TensorToFrame",
    "FrameToTensor": "surgseg.operators.frame_to_tensor:FrameToTensor",
    "VideoFileSink": "surgseg.operators.video_file_sink:VideoFileSink",
    "MaskSink": "surgseg.operators.mask_sink:MaskSink",
    "MetricsSink": "surgseg.operators.metrics_sink:MetricsSink",
    "QAMonitor": "surgseg.operators.qa_monitor:QAMonitor",
    "LatencyReport": "surgseg.operators.latency_report:LatencyReport",
    "HolovizSink": "surgseg.operators.holoviz_sink:HolovizSink",
    "TestPatternSource": "surgseg.operators.test_pattern_source:TestPatternSource",
    "PassThrough": "surgseg.operators.pass_through:PassThrough",
    "FrameCounterSink": "surgseg.operators.frame_counter_sink:FrameCounterSink",
    "Preproc": "surgseg.operators.preproc:Preproc",
    "SAM2Prior": "surgseg.operators.sam2_prior:SAM2Prior",
    "Refiner": "surgseg.operators.refiner:Refiner",
    "TemporalEMA": "surgseg.operators.temporal_ema:TemporalEMA",
    "Overlay": "surgseg.operators.overlay:Overlay",
    "DebugSnapshot": "surgseg.operators.debug_snapshot:DebugSnapshot",
}

HOLOSCAN_BUILTINS = (
    "BayerDemosaicOp", "FormatConverterOp", "HolovizOp", "InferenceOp", "InferenceProcessorOp",
    "SegmentationPostprocessorOp", "V4L2VideoCaptureOp", "VideoStreamRecorderOp", "VideoStreamReplayerOp",
    "PingTxOp", "PingRxOp", "PingTensorTxOp", "PingTensorRxOp",
)


@dataclass(frozen=True)
class OperatorType:
    name: str
    cls: type
    builtin: bool
    """A Holoscan built-in: parameters are passed through as keyword arguments, not validated by a dataclass."""


def known_names(plugins: dict[str, type] | None = None) -> list[str]:
    return sorted([*OPERATORS, *HOLOSCAN_BUILTINS, *(plugins or {})])


def load_plugins(modules: list[str], key: str = "plugins") -> dict[str, type]:
    """Import the listed plugin modules and collect their `SURGSEG_OPERATORS` tables."""
    found: dict[str, type] = {}
    for i, module_name in enumerate(modules):
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise InputError(f"{key}[{i}]: cannot import plugin module '{module_name}': {exc}") from exc
        table = getattr(module, "SURGSEG_OPERATORS", None)
        if not isinstance(table, dict):
            raise InputError(f"{key}[{i}]: plugin module '{module_name}' defines no SURGSEG_OPERATORS dict")
        found.update(table)
    return found


def resolve(name: Any, key: str, plugins: dict[str, type] | None = None) -> OperatorType:
    """The operator class for a YAML `type:` value, or an InputError naming `key` and the nearest names."""
    plugins = plugins or {}
    if isinstance(name, str) and name in plugins:
        return OperatorType(name, plugins[name], builtin=False)
    if isinstance(name, str) and name in OPERATORS:
        module_name, class_name = OPERATORS[name].split(":")
        return OperatorType(name, getattr(importlib.import_module(module_name), class_name), builtin=False)
    if isinstance(name, str) and name in HOLOSCAN_BUILTINS:
        import surgseg.operators  # noqa: F401  (preloads libcudart)
        import holoscan.operators

        return OperatorType(name, getattr(holoscan.operators, name), builtin=True)
    close = difflib.get_close_matches(str(name), known_names(plugins), n=3, cutoff=0.5)
    hint = f" (did you mean {', '.join(close)}?)" if close else f" (known: {', '.join(known_names(plugins))})"
    raise InputError(f"{key}: unknown operator type '{name}'{hint}")
