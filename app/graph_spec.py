"""Read a graph YAML, apply `--set` overrides and validate everything before any operator exists.

Every problem becomes one `InputError` line that names the YAML key (`operators.prior.memory.every: ...`).
Operator parameters go through `engines.config.validate_config`; settings that must agree across operators are
checked by `graph_agreement` once the whole graph is read.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from surgseg.app.graph_agreement import check_agreement
from surgseg.app.registry import OperatorType, load_plugins, resolve
from surgseg.engines.config import check_existing_paths, refuse_unknown, validate_config
from surgseg.engines.errors import InputError

TOP_LEVEL_KEYS = ("name", "device", "scheduler", "operators", "flows", "plugins", "tracking")
SCHEDULER_TYPES = ("greedy", "event", "multithread")
DEVICES = ("auto", "cpu", "cuda")
CONDITION_KEYS = ("count", "period_ms")
RESERVED_OPERATOR_KEYS = ("type", "conditions")
MADE_BY = {"out/demo/": "`surgseg demo` (or `make demo`) makes it"}
"""Where the shipped graphs expect their default artefacts, and the command that makes them."""


@dataclass(frozen=True)
class OperatorSpec:
    name: str
    type: OperatorType
    params: Any
    """The operator's validated Config instance, or a kwargs dict for Holoscan built-ins."""
    count: int | None = None
    period_ms: float | None = None


@dataclass(frozen=True)
class FlowSpec:
    source: str
    source_port: str | None
    target: str
    target_port: str | None
    feedback: bool
    key: str


@dataclass(frozen=True)
class SchedulerSpec:
    type: str = "greedy"
    workers: int = 2
    stop_on_deadlock_timeout_ms: int = 500
    check_recession_period_ms: float = 0.1
    """multithread only: longest idle wait of a worker (Holoscan's default of 5 ms costs ~1 ms per hop)."""
    max_duration_ms: int | None = None

    def __post_init__(self) -> None:
        if self.type not in SCHEDULER_TYPES:
            raise InputError(f"type: expected one of {', '.join(SCHEDULER_TYPES)}, got {self.type!r}")
        if self.workers < 1:
            raise InputError(f"workers: expected at least 1, got {self.workers}")


@dataclass
class GraphSpec:
    path: Path
    name: str
    device: str
    scheduler: SchedulerSpec
    operators: dict[str, OperatorSpec]
    flows: list[FlowSpec]
    tracking: bool = False
    raw: dict[str, Any] = field(default_factory=dict)

    def sources(self) -> list[str]:
        """Operators that no flow feeds (feedback flows excluded)."""
        fed = {f.target for f in self.flows if not f.feedback}
        return [name for name in self.operators if name not in fed]

    def single_source(self) -> str:
        """The graph's only source, or an InputError for tools that swap it (sweep, qa)."""
        sources = self.sources()
        if len(sources) != 1:
            raise InputError(f"{self.path}: expected exactly one source operator, found {', '.join(sources) or 'none'}")
        return sources[0]

    def of_type(self, type_name: str) -> list[str]:
        """Names of the operators of one registered type."""
        return [name for name, op in self.operators.items() if op.type.name == type_name]


def load_graph(path: str | Path, overrides: list[str] | tuple[str, ...] = (), check_paths: bool = True) -> GraphSpec:
    """Read, override and validate a graph YAML; raise InputError naming the key at fault.

    `check_paths=False` skips only the existence of input files: for tools that read a graph's structure before
    they point its source somewhere else (sweep, qa)."""
    path = Path(path)
    raw = read_yaml(path)
    for item in overrides:
        apply_override(raw, item)
    return validate(raw, path, check_paths)


def missing_inputs(spec: GraphSpec) -> list[str]:
    """What a graph loaded with `check_paths=False` still lacks before it can run, one line each: input files not
    made yet (the first per operator, with the command that makes a shipped default) and optional dependencies not
    installed (an operator's `missing_prerequisites(config, key)`, naming what to install)."""
    lines = []
    for name, op in spec.operators.items():
        if op.type.builtin:
            continue
        key = f"operators.{name}"
        try:
            check_existing_paths(op.params, key)
        except InputError as exc:
            made_by = [how for prefix, how in MADE_BY.items() if prefix in str(exc)]
            lines.append(f"{exc}{': ' + made_by[0] if made_by else ''}")
        prerequisites = getattr(op.type.cls, "missing_prerequisites", None)
        if prerequisites is not None:
            lines.extend(prerequisites(op.params, key))
    return lines


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise InputError(f"{path}: no such graph file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read graph file: {exc}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError(f"{path}: not valid YAML{line}: {problem}") from None
    if not isinstance(raw, dict):
        raise InputError(f"{path}: a graph YAML must be a mapping with 'operators' and 'flows', got {type(raw).__name__}")
    return raw


def apply_override(raw: dict[str, Any], item: str) -> None:
    """Apply one `a.b.c=value` override (value parsed as YAML) to keys that exist (or are operator parameters)."""
    if not item.split("=", 1)[0].isprintable():
        raise InputError(f"--set {item!r}: the key holds a control character (newline, tab, ...)")
    if "=" not in item:
        raise InputError(f"--set {item}: expected KEY=VALUE")
    dotted, text = item.split("=", 1)
    keys = dotted.split(".")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = text
    node: Any = raw
    for depth, key in enumerate(keys[:-1]):
        inside_operator = depth >= 2 and keys[0] == "operators"
        if isinstance(node, dict) and key not in node and inside_operator:
            node[key] = {}  # a nested parameter the YAML left at its default; the operator's config validates it
        if not isinstance(node, dict) or key not in node:
            raise InputError(f"--set {dotted}: no key '{'.'.join(keys[:depth + 1])}' in the graph")
        node = node[key]
    last = keys[-1]
    is_operator_param = len(keys) >= 3 and keys[0] == "operators"
    if not isinstance(node, dict) or (last not in node and not is_operator_param):
        raise InputError(f"--set {dotted}: no key '{dotted}' in the graph")
    node[last] = value


def validate(raw: dict[str, Any], path: Path, check_paths: bool = True) -> GraphSpec:
    refuse_unknown(raw, TOP_LEVEL_KEYS, "", noun="key")
    name = raw.get("name", path.stem)
    device = raw.get("device", "auto")
    if device not in DEVICES:
        raise InputError(f"device: expected one of {', '.join(DEVICES)}, got {device!r}")
    plugins_raw = raw.get("plugins", [])
    if not isinstance(plugins_raw, list) or not all(isinstance(m, str) for m in plugins_raw):
        raise InputError("plugins: expected a list of module names")
    plugins = load_plugins(plugins_raw)
    operators = _operators(raw.get("operators"), plugins, check_paths)
    flows = _flows(raw.get("flows"), operators)
    _check_every_operator_flows(operators, flows)
    _check_no_cycle(operators, flows)
    tracking = raw.get("tracking", False)
    if not isinstance(tracking, bool):
        raise InputError(f"tracking: expected true or false, got {tracking!r}")
    spec = GraphSpec(path=path, name=str(name), device=device, scheduler=_scheduler(raw.get("scheduler", {})),
                     operators=operators, flows=flows, tracking=tracking, raw=raw)
    check_agreement(spec, check_paths)
    return spec


def _scheduler(raw: Any) -> SchedulerSpec:
    if not isinstance(raw, dict):
        raise InputError(f"scheduler: expected a mapping like {{type: greedy}}, got {raw!r}")
    return validate_config(SchedulerSpec, raw, "scheduler")


def _operators(raw: Any, plugins: dict[str, type], check_paths: bool) -> dict[str, OperatorSpec]:
    if not isinstance(raw, dict) or not raw:
        raise InputError("operators: expected a mapping of operator name → {type: ..., parameters}")
    specs = {}
    for name, entry in raw.items():
        key = f"operators.{name}"
        if not isinstance(entry, dict):
            raise InputError(f"{key}: expected a mapping with 'type', got {entry!r}")
        if "type" not in entry:
            raise InputError(f"{key}.type: missing (every operator names its type)")
        op_type = resolve(entry["type"], f"{key}.type", plugins)
        params = {k: v for k, v in entry.items() if k not in RESERVED_OPERATOR_KEYS}
        conditions = entry.get("conditions", {}) or {}
        if not isinstance(conditions, dict):
            raise InputError(f"{key}.conditions: expected a mapping like {{count: 100}}")
        refuse_unknown(conditions, CONDITION_KEYS, f"{key}.conditions", noun="key")
        count, period = conditions.get("count"), conditions.get("period_ms")
        if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 0):
            raise InputError(f"{key}.conditions.count: expected a whole number ≥ 0, got {count!r}")
        if period is not None and (not isinstance(period, (int, float)) or isinstance(period, bool) or period <= 0):
            raise InputError(f"{key}.conditions.period_ms: expected a positive number, got {period!r}")
        config = params if op_type.builtin else validate_config(op_type.cls.Config, params, key, check_paths)
        specs[name] = OperatorSpec(name=name, type=op_type, params=config, count=count, period_ms=period)
    return specs


def _flows(raw: Any, operators: dict[str, OperatorSpec]) -> list[FlowSpec]:
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        raise InputError("flows: expected a list of [from, to] pairs")
    flows = []
    seen_inputs: dict[tuple[str, str | None], str] = {}
    for i, item in enumerate(raw):
        key = f"flows[{i}]"
        if isinstance(item, list) and len(item) == 2:
            source, target, feedback = item[0], item[1], False
        elif isinstance(item, dict) and {"from", "to"} <= set(item) and set(item) <= {"from", "to", "feedback"}:
            source, target, feedback = item["from"], item["to"], item.get("feedback", False)
        else:
            raise InputError(f"{key}: expected [from, to] or {{from: op.port, to: op.port, feedback: bool}}, got {item!r}")
        if not isinstance(feedback, bool):
            raise InputError(f"{key}.feedback: expected true or false, got {feedback!r}")
        src, src_port = _endpoint(source, operators, key, "outputs")
        dst, dst_port = _endpoint(target, operators, key, "inputs")
        if feedback and dst_port is not None:
            allowed = operators[dst].type.cls.feedback_inputs
            if dst_port not in allowed:
                raise InputError(f"{key}: input '{dst}.{dst_port}' cannot take feedback "
                                 f"(feedback inputs: {', '.join(allowed) or 'none'})")
        if (dst, dst_port) in seen_inputs and dst_port is not None:
            raise InputError(f"{key}: input '{dst}.{dst_port}' is already fed by {seen_inputs[(dst, dst_port)]}")
        seen_inputs[(dst, dst_port)] = key
        flows.append(FlowSpec(src, src_port, dst, dst_port, feedback, key))
    return flows


def _endpoint(value: Any, operators: dict[str, OperatorSpec], key: str, direction: str) -> tuple[str, str | None]:
    """(operator, port) for 'op' or 'op.port'; the port is inferred when the operator has exactly one."""
    if not isinstance(value, str):
        raise InputError(f"{key}: expected 'operator' or 'operator.port', got {value!r}")
    name, _, port = value.partition(".")
    if name not in operators:
        close = difflib.get_close_matches(name, list(operators), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise InputError(f"{key}: unknown operator '{name}'{hint}")
    op_type = operators[name].type
    if op_type.builtin:
        return name, port or None
    ports = getattr(op_type.cls, direction)
    if not port:
        if len(ports) != 1:
            raise InputError(f"{key}: '{name}' has {len(ports)} {direction} ({', '.join(ports) or 'none'}): "
                             f"name one as '{name}.<port>'")
        return name, ports[0]
    if port not in ports:
        raise InputError(f"{key}: '{name}' has no {direction[:-1]} port '{port}' ({direction}: {', '.join(ports) or 'none'})")
    return name, port


def _check_every_operator_flows(operators: dict[str, OperatorSpec], flows: list[FlowSpec]) -> None:
    if len(operators) < 2:
        return
    touched = {f.source for f in flows} | {f.target for f in flows}
    for name in operators:
        if name not in touched:
            raise InputError(f"operators.{name}: not connected by any flow")


def _check_no_cycle(operators: dict[str, OperatorSpec], flows: list[FlowSpec]) -> None:
    """Depth-first search over the forward flows; a cycle is an error unless one of its flows is feedback."""
    edges: dict[str, list[FlowSpec]] = {name: [] for name in operators}
    for flow in flows:
        if not flow.feedback:
            edges[flow.source].append(flow)
    state: dict[str, int] = {}

    def visit(node: str) -> None:
        state[node] = 1
        for flow in edges[node]:
            if state.get(flow.target) == 1:
                raise InputError(f"{flow.key}: '{flow.source} → {flow.target}' closes a cycle "
                                 f"(mark the edge back to an earlier operator as `feedback: true`)")
            if flow.target not in state:
                visit(flow.target)
        state[node] = 2

    for name in operators:
        if name not in state:
            visit(name)
