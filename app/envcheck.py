"""Post-install check: the CPU torch stayed, no torchvision came along, sam2 and Holoscan import."""

from __future__ import annotations

import importlib.metadata as md
import logging
import sys

log = logging.getLogger("surgseg.envcheck")


def problems() -> list[str]:
    """Everything wrong with the installed environment, one line each."""
    found: list[str] = []
    import torch

    if torch.version.cuda is not None and not torch.cuda.is_available():
        found.append(f"torch {torch.__version__} is a CUDA build on a machine without a GPU (expected the CPU build)")
    try:
        md.version("torchvision")
        found.append("torchvision is installed: sam2 must be installed with --no-deps (see Makefile)")
    except md.PackageNotFoundError:
        pass
    import sam2  # noqa: F401
    import surgseg.operators  # noqa: F401  (preloads libcudart)
    import holoscan  # noqa: F401

    return found


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    found = problems()
    for line in found:
        log.error("environment: %s", line)
    if not found:
        log.info("environment ok: torch CPU build, sam2, holoscan importable")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
