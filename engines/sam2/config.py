"""The one SAM 2 configuration, shared by the graph YAML (`SAM2Prior`), the tracker and the streaming engine.

    prior:
      type: SAM2Prior
      num_classes: 2
      model:   {name: sam2.1_hiera_tiny, checkpoint: null, image_size: 256}
      memory:  {every: 5, max_memories: 6, max_cond_frames: 4, max_obj_ptrs: 16, pruning: fifo}
      seeding: {condition_every: 5, absent_after: 5, auto_seed: true, min_area: 64, frames: 3, release_after: 15}
      runtime: {mode: sync, worker: thread, backend: torch, precision: fp32, compile: false, warp: none}
      instances: {enabled: false, max_objects: 8, lost_after: 3, refind_distance: 0.15}

Each setting has one name and one default, here; nothing else repeats them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from surgseg.engines.config import ExistingPath
from surgseg.engines.errors import InputError

PRUNING = ("fifo", "similarity")
MODES = ("sync", "async")
WORKERS = ("thread", "process")
BACKENDS = ("torch", "onnxruntime", "tensorrt")
PRECISIONS = ("fp32", "bf16", "fp16", "int8")
WARPS = ("none", "flow")
# model name -> config file inside the sam2 package
MODEL_CONFIGS = {
    "sam2.1_hiera_tiny": "configs/sam2.1/sam2.1_hiera_t.yaml",
    "sam2.1_hiera_small": "configs/sam2.1/sam2.1_hiera_s.yaml",
    "sam2.1_hiera_base_plus": "configs/sam2.1/sam2.1_hiera_b+.yaml",
    "sam2.1_hiera_large": "configs/sam2.1/sam2.1_hiera_l.yaml",
    "sam2_hiera_tiny": "configs/sam2/sam2_hiera_t.yaml",
    "sam2_hiera_small": "configs/sam2/sam2_hiera_s.yaml",
    "sam2_hiera_base_plus": "configs/sam2/sam2_hiera_b+.yaml",
    "sam2_hiera_large": "configs/sam2/sam2_hiera_l.yaml",
}
SHORT_NAMES = {"tiny", "small", "base_plus", "large"}  # short names mean SAM 2.1


def canonical_model_name(name: str) -> str:
    """`tiny` -> `sam2.1_hiera_tiny`; full names pass through; unknown names raise InputError."""
    full = f"sam2.1_hiera_{name}" if name in SHORT_NAMES else name
    if full not in MODEL_CONFIGS:
        raise InputError(f"name: unknown SAM 2 model {name!r} (known: {', '.join(sorted(MODEL_CONFIGS))})")
    return full


def check_image_size(image_size: int) -> None:
    """SAM 2 needs a square input whose stride-32 feature map exists: a multiple of 32, at least 128."""
    if image_size < 128 or image_size % 32:
        raise InputError(f"image_size: {image_size} must be a multiple of 32 and >= 128 (e.g. 256, 384, 512, 1024)")


@dataclass(frozen=True)
class ModelConfig:
    """Which SAM 2 to build."""

    name: str = "sam2.1_hiera_tiny"
    """`sam2.1_hiera_{tiny,small,base_plus,large}`, `sam2_hiera_*`, or the short `tiny` ... `large` (SAM 2.1)."""
    checkpoint: Annotated[str | None, ExistingPath] = None
    """An official checkpoint; None builds random weights (tests, demos without a network)."""
    image_size: int = 256
    """SAM 2's square input side: a multiple of 32, at least 128."""
    random_weights_seed: int = 0
    """Seed of the random weights built when no checkpoint is given."""
    postprocessing: bool = False
    """SAM 2's dynamic multimask fallback and binarised click memories (False matches SAM2VideoPredictor)."""

    def __post_init__(self) -> None:
        canonical_model_name(self.name)
        check_image_size(self.image_size)


@dataclass(frozen=True)
class MemoryConfig:
    """Memory cadence and bounds: nothing grows with the number of frames seen."""

    every: int = 5
    """K: write a memory entry every K processed frames (the others skip the memory encoder)."""
    max_memories: int = 6
    """N: ordinary memory entries per object (0 = conditioning frames and pointers only)."""
    max_cond_frames: int = 4
    """M: conditioning frames per object, the seed included (always kept)."""
    max_obj_ptrs: int = 16
    """Object pointers of the last max_obj_ptrs-1 frames (plus the conditioning frames')."""
    pruning: str = "fifo"
    """Which memory a full bank drops: the oldest (`fifo`) or the one most like the newest (`similarity`)."""

    def __post_init__(self) -> None:
        _check({"every": self.every >= 1, "max_memories": self.max_memories >= 0,
                          "max_cond_frames": self.max_cond_frames >= 1, "max_obj_ptrs": self.max_obj_ptrs >= 1,
                          "pruning": self.pruning in PRUNING}, self)


@dataclass(frozen=True)
class SeedingConfig:
    """How SAM 2 is started, fed back, re-seeded and released around the refined mask."""

    condition_every: int = 5
    """Condition SAM 2 on the refined mask of every N-th processed frame (0 = never)."""
    absent_after: int = 5
    """Frames in a row with SAM 2's object score <= 0 before a class is reported absent."""
    auto_seed: bool = True
    """Seed (and re-seed) a class from the refined mask once it is stable, without a person."""
    min_area: int = 64
    """Model-size pixels of a class in the refined mask for a frame to count as showing it."""
    frames: int = 3
    """Frames in a row a class must be present before it is seeded."""
    release_after: int = 15
    """Frames in a row a tracked class's refined mask stays under `min_area` before SAM 2 forgets it
    (0 = only SAM 2's object score decides)."""
    prior_clip: float = 12.0
    """Prior logits are clipped to ±prior_clip."""

    def __post_init__(self) -> None:
        _check({"condition_every": self.condition_every >= 0, "absent_after": self.absent_after >= 1,
                           "min_area": self.min_area >= 1, "frames": self.frames >= 1,
                           "release_after": self.release_after >= 0, "prior_clip": self.prior_clip > 0}, self)


@dataclass(frozen=True)
class RuntimeConfig:
    """How SAM 2 runs: on or off the frame's critical path, through which backend, at which precision."""

    mode: str = "sync"
    """`sync`: every frame waits for SAM 2. `async`: SAM 2 works on the newest frame off the critical path and
    every frame takes the newest prior available."""
    worker: str = "thread"
    """async only (sync ignores it): where SAM 2 runs. `thread`: a worker thread in the graph's process, no copies,
    but SAM 2's many small Python-level ops share the GIL with the fast path. `process`: a spawned child process that
    builds SAM 2 itself (≈ 2 s more at start-up); each step copies the image and the prior through a pipe (+0.3 ms
    at 128×160, +5 ms at 512², +20 ms at 1024² on the 2-core CPU), and a SAM 2 crash cannot take the graph down.
    On the quiet 2-core machine (benchmarks/async_options.py, greedy, SAM 2 tiny at 256 px, 30 s) both took the same
    SAM 2 steps (96 thread, 98 process), prior age p50 15 / 14 frames, 30 fps, none dropped, p99 8.0 / 8.2 ms. Keep
    `thread` unless SAM 2 should not share the process (its crash, its GIL) or is to move to its own machine."""
    backend: str = "torch"
    """torch | onnxruntime | tensorrt (the exported modules, see `surgseg export-sam2`)."""
    precision: str = "fp32"
    """fp32 | bf16 | fp16 (CUDA autocast with torch; FP16 engines with TensorRT) | int8 (ONNX Runtime)."""
    compile: bool = False
    """torch.compile the image encoder (torch backend on CUDA)."""
    cuda_graph: bool = False
    """Replay the image encoder from a captured CUDA graph (torch backend on CUDA; not with `compile`)."""
    threads: int = 0
    """Intra-op threads SAM 2 may use on a CPU (torch or ONNX Runtime); 0 = every core, but one in `async` mode
    (the fast path's): on 2 cores that took the 720p end-to-end p99 from 54-71 ms to 38-61 ms (torch) and 36-40 ms
    (ONNX Runtime int8)."""
    warp: str = "none"
    """async: carry a prior made on an older frame to the current one with dense optical flow (`flow`)."""
    nice: int = 10
    """async: SAM 2's worker runs this much nicer than the graph (Linux: its thread, or its child process), so when
    the CPU is short the fast path (every frame) wins it and SAM 2's prior grows older instead; 0 = the same."""
    exported: Annotated[str | None, ExistingPath] = None
    """Folder of the exported SAM 2 modules and their manifest (onnxruntime and tensorrt backends)."""

    def __post_init__(self) -> None:
        _check({"mode": self.mode in MODES, "worker": self.worker in WORKERS, "backend": self.backend in BACKENDS,
                "precision": self.precision in PRECISIONS, "warp": self.warp in WARPS, "threads": self.threads >= 0,
                "nice": 0 <= self.nice <= 19, "cuda_graph": not (self.cuda_graph and self.compile)}, self)


@dataclass(frozen=True)
class InstancesConfig:
    """Instance tracking: each instrument its own SAM 2 object with a persistent ID (off: one object per class).
    Birth, presence and release counts come from `seeding` (`frames`, `min_area`, `release_after`)."""

    enabled: bool = False
    max_objects: int = 8
    """At most this many tracks (and SAM 2 objects) at once; more components wait, logged once."""
    lost_after: int = 3
    """Frames a track may go unmatched silently (a short occlusion) before it is reported lost."""
    refind_distance: float = 0.15
    """A missing track comes back only on a component within this share of the image diagonal of where it left."""

    def __post_init__(self) -> None:
        _check({"max_objects": self.max_objects >= 1, "lost_after": self.lost_after >= 1,
                "refind_distance": 0 < self.refind_distance <= 1}, self)


@dataclass(frozen=True)
class SAM2Config:
    """Everything SAM 2 needs: the model, its memory, the seeding policy and the runtime."""

    num_classes: int = 2
    """Classes including background: one SAM 2 object per foreground class."""
    model: ModelConfig = field(default_factory=ModelConfig)
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    seeding: SeedingConfig = field(default_factory=SeedingConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    instances: InstancesConfig = field(default_factory=InstancesConfig)

    def __post_init__(self) -> None:
        if self.num_classes < 2:
            raise InputError(f"num_classes: {self.num_classes} < 2 (background counts as a class)")


def _check(checks: dict[str, bool], config: object) -> None:
    """InputError "field: invalid value" for the first failed check (validate_config prefixes the key)."""
    bad = [name for name, ok in checks.items() if not ok]
    if bad:
        raise InputError(f"{bad[0]}: invalid value {getattr(config, bad[0])!r}")
