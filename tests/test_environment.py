"""The installed environment and the package's layering rules."""

from __future__ import annotations

import json
import resource
import subprocess
import sys

from graph_helpers import cli_env

from surgseg.app.envcheck import problems
from surgseg.app.registry import OPERATORS
from surgseg.operators.holoscan_loader import RECOMMENDED_STACK_BYTES


def python(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(), timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_environment_has_cpu_torch_and_no_torchvision() -> None:
    assert problems() == []


def test_holoscan_imports_without_ld_library_path() -> None:
    assert python("import surgseg.operators, holoscan.core; print(holoscan.__version__)") == "4.6.0"


def test_importing_operators_raises_the_stack_limit_where_allowed() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_STACK)
    expected = RECOMMENDED_STACK_BYTES if hard == resource.RLIM_INFINITY else min(RECOMMENDED_STACK_BYTES, hard)
    code = "import resource, surgseg.operators; print(resource.getrlimit(resource.RLIMIT_STACK)[0])"
    got = int(python(code))
    assert got == resource.RLIM_INFINITY or got >= expected


def test_runtime_never_imports_the_training_package() -> None:
    modules = ["surgseg.app.runtime", "surgseg.app.graph_spec"] + [target.split(":")[0] for target in OPERATORS.values()]
    code = (f"import importlib, json, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('surgseg.training'))))")
    assert json.loads(python(code)) == []


def test_engines_never_import_holoscan() -> None:
    code = ("import importlib, json, pkgutil, sys, surgseg.engines as e\n"
            "for m in pkgutil.iter_modules(e.__path__): importlib.import_module('surgseg.engines.' + m.name)\n"
            "print(json.dumps([m for m in sys.modules if m.split('.')[0] == 'holoscan' "
            "or m.startswith(('surgseg.operators', 'surgseg.app', 'surgseg.training'))]))")
    assert json.loads(python(code)) == []
