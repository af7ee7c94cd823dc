"""One way to validate a configuration: a (nested) dataclass filled from a mapping, every error naming its key.

Graph YAMLs, training configs and artefact metadata all go through `validate_config`: unknown keys are refused at
any depth (with a "did you mean" hint; also inside Optional fields, dict values and list items), values are checked
and coerced by pydantic, and fields annotated `Annotated[str | None, ExistingPath]` must name an existing file or
folder. `key` is the prefix of every message (`operators.prior` → `operators.prior.memory.every: ...`); "" for a
whole file, whose caller may prefix the file name.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import pydantic

from surgseg.engines.errors import InputError

T = TypeVar("T")


class ExistingPath:
    """Marker for `Annotated[str | None, ExistingPath]` fields: a path that must exist when checked."""


def validate_config(cls: type[T], values: Any, key: str, check_paths: bool = True) -> T:
    """`cls` built from `values` (a mapping); InputError "key.field: what is wrong" on the first problem."""
    if not isinstance(values, dict):
        raise InputError(f"{key or 'config'}: expected a mapping, got {values!r}")
    reject_unknown_keys(cls, values, key)
    try:
        config = pydantic.TypeAdapter(cls).validate_python(values)
    except pydantic.ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join([*filter(None, [key]), *(str(p) for p in error["loc"])])
        if error["type"] == "value_error":  # a __post_init__ check: its message starts with the field's name
            raise InputError(join_key(where, str(error["ctx"]["error"]))) from None
        raise InputError(f"{where}: {error['msg'].lower()}, got {error['input']!r}") from None
    if check_paths:
        check_existing_paths(config, key)
    return config


def reject_unknown_keys(cls: type, values: dict[str, Any], key: str) -> None:
    """Refuse keys that are not fields of `cls`, recursing into fields that are dataclasses themselves."""
    hints = typing.get_type_hints(cls)
    allowed = tuple(f.name for f in dataclasses.fields(cls))
    refuse_unknown(values, allowed, key)
    for name, value in values.items():
        _reject_unknown_inside(hints[name], value, join_key(key, name))
    for f in dataclasses.fields(cls):
        if f.name not in values and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise InputError(f"{join_key(key, f.name)}: missing required parameter")


def refuse_unknown(values: dict[str, Any], allowed: tuple[str, ...], key: str, noun: str = "parameter") -> None:
    """InputError "key.name: unknown <noun> (did you mean ...?)" for the first key of `values` not in `allowed`."""
    for name in values:
        if name not in allowed:
            close = difflib.get_close_matches(str(name), allowed, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else f" ({noun}s: {', '.join(allowed) or 'none'})"
            raise InputError(f"{join_key(key, str(name))}: unknown {noun}{hint}")


def check_existing_paths(config: Any, key: str) -> None:
    """Every `ExistingPath` field of `config` (and of its nested dataclasses) that is set names something on disk."""
    hints = typing.get_type_hints(type(config), include_extras=True)
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if ExistingPath in getattr(hints[f.name], "__metadata__", ()):
            if value is not None and not Path(value).exists():
                raise InputError(f"{join_key(key, f.name)}: no such file or folder: {value}")
        else:
            _check_paths_inside(value, join_key(key, f.name))


def _check_paths_inside(value: Any, key: str) -> None:
    """`check_existing_paths` for a dataclass value, and for the dataclasses in a dict's values or a list."""
    if dataclasses.is_dataclass(value):
        check_existing_paths(value, key)
    elif isinstance(value, dict):
        for name, item in value.items():
            _check_paths_inside(item, join_key(key, str(name)))
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_paths_inside(item, join_key(key, str(i)))


def join_key(key: str, name: str) -> str:
    """`key.name`, or `name` alone at the top level (key "")."""
    return f"{key}.{name}" if key else name


def _reject_unknown_inside(hint: Any, value: Any, key: str) -> None:
    """Recurse into the dataclasses a value holds: itself, an Optional one, dict values or list/tuple items."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        if isinstance(value, dict):
            reject_unknown_keys(hint, value, key)
    elif origin in (dict, collections.abc.Mapping) and len(args) == 2 and isinstance(value, dict):
        for name, item in value.items():
            _reject_unknown_inside(args[1], item, join_key(key, str(name)))
    elif origin in (list, tuple, collections.abc.Sequence) and args and isinstance(value, (list, tuple)):
        same = origin is not tuple or (len(args) == 2 and args[1] is Ellipsis)
        for i, item in enumerate(value):
            if same or i < len(args):
                _reject_unknown_inside(args[0] if same else args[i], item, join_key(key, str(i)))
    elif origin in (typing.Union, types.UnionType):
        for arg in args:  # the first member that is or holds a dataclass (an Optional's only one)
            if dataclasses.is_dataclass(arg) or typing.get_args(arg):
                _reject_unknown_inside(arg, value, key)
                return
