"""Make `import holoscan` work on any machine the wheel installs on, with no LD_LIBRARY_PATH set.

Holoscan 4.6 links `libcudart.so.12`; the `nvidia-cuda-runtime-cu12` wheel ships it but not on the loader's path.
Loading it once with RTLD_GLOBAL before `import holoscan` satisfies the dependency. Holoscan also asks for a
32 MiB stack: the soft limit is raised up to the hard limit where the process may (the main thread's stack grows
on demand up to the soft limit; threads created afterwards take it as their default size).

Holoscan and GXF log from C++ straight to file descriptor 2. The CLI calls `configure_logging` before holoscan is
imported: with `-v` every Holoscan and GXF line goes to the terminal (debug level); otherwise `held_native_output`
holds their lines back while a graph runs. When the run fails, surgseg reports the failure in one line and the
held lines (Holoscan's own account of the same exception: `Exception occurred for operator`, the `At:` frame,
`GXF_FAILURE` from the executor, scheduler and runtime) go to the debug log; when it does not, they are shown, so
no Holoscan error is hidden. The two `CUDA driver version is insufficient` warnings that Holoscan's
CudaObjectHandler prints on a machine without an NVIDIA driver (gxf_cuda.cpp) are dropped there: a CPU-only
machine is a supported set-up, and on a machine with a driver they are kept.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import re
import resource
import sys
import tempfile
from collections.abc import Iterator
from importlib.util import find_spec
from pathlib import Path

log = logging.getLogger(__name__)

RECOMMENDED_STACK_BYTES = 32 * 1024 * 1024
QUIET_LEVEL = "WARN"
VERBOSE_LEVEL = "DEBUG"
CPU_ONLY_NOTICES = re.compile(r"CUDA driver version is insufficient|CudaObjectHandler with support for CPU data only")
"""What Holoscan prints when it finds no NVIDIA driver: expected on a CPU-only machine."""
_loaded = False
_hold_output = False


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
    os.environ.setdefault("HOLOSCAN_LOG_LEVEL", QUIET_LEVEL)
    path = cudart_path()
    if path is not None:
        ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
    else:
        log.debug("nvidia-cuda-runtime-cu12 not found; relying on the system loader for libcudart.so.12")
    raise_stack_limit()
    _loaded = True


def configure_logging(verbose: bool) -> None:
    """Holoscan's log levels for a CLI run (set before holoscan is imported; applied at once if it already is).

    Verbose: every Holoscan and GXF line, live. Otherwise a level the user set in HOLOSCAN_LOG_LEVEL is kept and
    graph runs hold Holoscan's output back (see `held_native_output`)."""
    global _hold_output
    _hold_output = not verbose
    if verbose:
        os.environ["HOLOSCAN_LOG_LEVEL"] = VERBOSE_LEVEL
        os.environ["HOLOSCAN_EXECUTOR_LOG_LEVEL"] = VERBOSE_LEVEL
    else:
        os.environ.setdefault("HOLOSCAN_LOG_LEVEL", QUIET_LEVEL)
    if "holoscan.logger" in sys.modules:
        from holoscan.logger import LogLevel, set_log_level

        set_log_level(getattr(LogLevel, os.environ["HOLOSCAN_LOG_LEVEL"].upper(), LogLevel.WARN))


def nvidia_driver_present() -> bool:
    """Whether this machine has an NVIDIA driver (its kernel module or a loadable libcuda)."""
    if Path("/proc/driver/nvidia/version").exists():
        return True
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True


@contextlib.contextmanager
def held_native_output() -> Iterator[None]:
    """While the CLI runs quietly: lines written to fd 2 by C++ (Holoscan, GXF) go to a temporary file, Python's
    stderr (surgseg's log) stays on the terminal. Afterwards the held lines go to the debug log when the block
    raised (surgseg reports that failure itself), else to stderr; CPU-only CUDA notices are dropped. A no-op
    unless `configure_logging(verbose=False)` ran."""
    if not _hold_output:
        yield
        return
    sys.stderr.flush()
    terminal = os.dup(2)
    python_stderr = os.fdopen(os.dup(terminal), "w", buffering=1, errors="backslashreplace")
    original = sys.stderr
    handlers = [h for h in logging.root.handlers if isinstance(h, logging.StreamHandler) and h.stream is original]
    with tempfile.TemporaryFile() as held:
        sys.stderr = python_stderr
        for handler in handlers:
            handler.setStream(python_stderr)
        os.dup2(held.fileno(), 2)
        failed = False
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            os.dup2(terminal, 2)
            os.close(terminal)
            sys.stderr = original
            for handler in handlers:
                handler.setStream(original)
            python_stderr.close()
            held.seek(0)
            _release(held.read().decode(errors="replace").splitlines(), failed)


def _release(lines: list[str], failed: bool) -> None:
    if not nvidia_driver_present():
        lines = [line for line in lines if not CPU_ONLY_NOTICES.search(line)]
    lines = [line for line in lines if line.strip()]
    if failed:
        for line in lines:
            log.debug("holoscan: %s", line)
    elif lines:
        sys.stderr.write("".join(line + "\n" for line in lines))
        sys.stderr.flush()
