"""Graph YAMLs shipped with surgseg (package data)."""

from importlib.resources import files
from pathlib import Path


def graph_path(name: str) -> Path:
    """Path of a shipped graph by name (`replay` or `replay.yaml`)."""
    filename = name if name.endswith(".yaml") else f"{name}.yaml"
    return Path(str(files(__package__) / filename))


def shipped_graphs() -> list[Path]:
    """Every graph YAML shipped with the package, sorted by name."""
    return sorted(Path(str(p)) for p in files(__package__).iterdir() if p.name.endswith(".yaml"))
