"""`validate_config`, the one way configurations are checked: every error names its key, at any depth."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import pytest

from surgseg.engines.config import ExistingPath, validate_config
from surgseg.engines.errors import InputError


@dataclass
class Source:
    path: Annotated[str | None, ExistingPath] = None
    fps: float = 30.0


@dataclass
class Setup:
    name: str = "run"
    main: Source = field(default_factory=Source)
    extra: list[Source] = field(default_factory=list)
    by_name: dict[str, Source] = field(default_factory=dict)
    spare: Source | None = None


def error_of(values: dict, key: str = "config") -> str:
    with pytest.raises(InputError) as caught:
        validate_config(Setup, values, key)
    return str(caught.value)


@pytest.mark.parametrize(("values", "message"), [
    ({"main": {"fsp": 1}}, "config.main.fsp: unknown parameter (did you mean 'fps'?)"),
    ({"extra": [{"fps": 1}, {"paht": "x"}]}, "config.extra.1.paht: unknown parameter (did you mean 'path'?)"),
    ({"by_name": {"left": {"fps": "fast"}}}, "config.by_name.left.fps: input should be a valid number"),
    ({"spare": {"size": 3}}, "config.spare.size: unknown parameter (parameters: path, fps)"),
])
def test_errors_inside_nested_dataclasses_name_the_full_key(values: dict, message: str) -> None:
    assert error_of(values).startswith(message)


def test_top_level_key_needs_no_prefix() -> None:
    assert error_of({"nmae": "x"}, key="") == "nmae: unknown parameter (did you mean 'name'?)"


def test_missing_paths_are_found_in_lists_and_mappings(tmp_path: Path) -> None:
    there = str(tmp_path)
    config = validate_config(Setup, {"main": {"path": there}, "by_name": {"a": {"path": there}}}, "config")
    assert config.by_name["a"].path == there and config.main.fps == 30.0
    assert error_of({"extra": [{"path": there}, {"path": str(tmp_path / "gone")}]}) == \
        f"config.extra.1.path: no such file or folder: {tmp_path / 'gone'}"
    validate_config(Setup, {"extra": [{"path": str(tmp_path / "gone")}]}, "config", check_paths=False)
