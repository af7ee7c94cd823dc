"""Make `import holoscan` work on any machine the wheel installs on, with no LD_LIBRARY_PATH set.

Holoscan 4.6 links `libcudart.so.12`; the `nvidia-cuda-runtime-cu12` wheel ships it but not on the loader's path.
Loading it once with RTLD_GLOBAL before `import holoscan` satisfies the dependency. Holoscan also asks for a
32 MiB stack: the soft limit is raised up to the hard limit where the process may (the main thread's stack grows
on demand up to the soft limit; threads created afterwards take it as their default size).
"""

from __future__ import annotations

import ctypes
import logging
import os
import resource
import sys
from importlib.util import find_spec
from pathlib import Path

log = logging.getLogger(__name__)

RECOMMENDED_STACK_BYTES = 32 * 1024 * 1024
_loaded = False


def cudart_path() -> Path | None:
    """Path of libcudart.so.12 inside the nvidia-cuda-runtime-cu12 wheel, if installed."""
    spec = find_spec("nvidia")
    roots = [Path(root) for root in (spec.submodule_search_locations or [])] if spec is not None else []
    roots += [Path(entry) / "nvidia" for entry in sys.path if entry]  # a regular `nvidia` package hides the rest
    for root in roots:
        candidate = root / "cuda_runtime" / "lib" / "libcudart.so.12"
        if candidate.exists():
            return candidate
    return None


def raise_stack_limit(target: int = RECOMMENDED_STACK_BYTES) -> int:
    """Raise the soft stack limit towards `target` (never above the hard limit); return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_STACK)
    if soft == resource.RLIM_INFINITY or soft >= target:
        return soft
    new_soft = target if hard == resource.RLIM_INFINITY else min(target, hard)
    resource.setrlimit(resource.RLIMIT_STACK, (new_soft, hard))
    return new_soft


def prepare_holoscan() -> None:
    """Preload the CUDA runtime, raise the stack limit and quieten Holoscan's info logs. Idempotent."""
    global _loaded
    if _loaded:
        return
    os.environ.setdefault("HOLOSCAN_LOG_LEVEL", "WARN")
    path = cudart_path()
    if path is not None:
        ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
    else:
        log.debug("nvidia-cuda-runtime-cu12 not found; relying on the system loader for libcudart.so.12")
    raise_stack_limit()
    _loaded = True
