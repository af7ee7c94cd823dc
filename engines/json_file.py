"""Reading a user-supplied JSON file with one-line errors that name it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from surgseg.engines.errors import InputError


def read_json(path: str | os.PathLike, missing: str = "not found") -> Any:
    """The parsed file; InputError `<path>: <missing>` when absent, `<path>: not valid JSON (...)` when malformed."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: {missing}") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
