"""A wrong graph stops before any operator starts, with one line naming the YAML key."""

from __future__ import annotations

from pathlib import Path

import pytest
from graph_helpers import smoke_graph, surgseg, write_graph

from surgseg.app.graph_spec import load_graph
from surgseg.engines.errors import InputError


def error_of(tmp_path: Path, graph: dict, overrides: tuple[str, ...] = ()) -> str:
    path = write_graph(tmp_path, graph)
    with pytest.raises(InputError) as caught:
        load_graph(path, overrides)
    return str(caught.value)


@pytest.fixture
def graph(tmp_path: Path) -> dict:
    return smoke_graph(tmp_path / "counts.json")


def test_valid_graph_loads_with_inferred_ports(tmp_path: Path, graph: dict) -> None:
    spec = load_graph(write_graph(tmp_path, graph))
    assert list(spec.operators) == ["source", "relay", "sink"]
    assert [(f.source_port, f.target_port) for f in spec.flows] == [("frame", "in"), ("out", "in")]
    assert spec.sources() == ["source"]


def test_unknown_operator_type_suggests_nearest_name(tmp_path: Path, graph: dict) -> None:
    graph["operators"]["relay"]["type"] = "PassTrough"
    assert error_of(tmp_path, graph) == "operators.relay.type: unknown operator type 'PassTrough' (did you mean PassThrough?)"


def test_unknown_parameter_names_the_key_and_suggests(tmp_path: Path, graph: dict) -> None:
    graph["operators"]["source"]["frams"] = 3
    assert error_of(tmp_path, graph) == "operators.source.frams: unknown parameter (did you mean 'frames'?)"


def test_missing_required_parameter_names_the_key(tmp_path: Path, graph: dict) -> None:
    graph["plugins"] = ["graph_plugins"]
    graph["operators"]["relay"] = {"type": "FeedbackProbe"}
    assert error_of(tmp_path, graph) == "operators.relay.path: missing required parameter"


def test_wrong_parameter_type_names_the_key(tmp_path: Path, graph: dict) -> None:
    graph["operators"]["source"]["frames"] = "many"
    message = error_of(tmp_path, graph)
    assert message.startswith("operators.source.frames: ") and "'many'" in message


def test_wrong_element_type_inside_a_list_names_the_index(tmp_path: Path, graph: dict) -> None:
    graph["operators"]["source"]["size"] = [48, "wide"]
    assert error_of(tmp_path, graph).startswith("operators.source.size.1: ")


def test_unknown_port_lists_the_real_ones(tmp_path: Path, graph: dict) -> None:
    graph["flows"][0] = ["source.video", "relay"]
    assert error_of(tmp_path, graph) == "flows[0]: 'source' has no output port 'video' (outputs: frame)"


def test_unknown_operator_in_flow(tmp_path: Path, graph: dict) -> None:
    graph["flows"][1] = ["relay", "snk"]
    assert error_of(tmp_path, graph) == "flows[1]: unknown operator 'snk' (did you mean 'sink'?)"


def test_operator_without_flows_is_refused(tmp_path: Path, graph: dict) -> None:
    graph["operators"]["spare"] = {"type": "PassThrough"}
    assert error_of(tmp_path, graph) == "operators.spare: not connected by any flow"


def test_cycle_without_feedback_mark_is_refused(tmp_path: Path, graph: dict) -> None:
    graph["plugins"] = ["graph_plugins"]
    graph["operators"]["probe"] = {"type": "FeedbackProbe", "path": str(tmp_path / "seen.json")}
    graph["flows"] = [["source", "probe.in"], ["probe", "relay"], ["relay", "probe.feedback"], ["relay", "sink"]]
    assert error_of(tmp_path, graph).startswith("flows[2]: 'relay → probe' closes a cycle")


def test_cycle_through_a_feedback_flow_is_accepted(tmp_path: Path, graph: dict) -> None:
    graph["plugins"] = ["graph_plugins"]
    graph["operators"]["probe"] = {"type": "FeedbackProbe", "path": str(tmp_path / "seen.json")}
    graph["flows"] = [["source", "probe.in"], ["probe", "relay"],
                      {"from": "relay", "to": "probe.feedback", "feedback": True}, ["relay", "sink"]]
    assert [f.feedback for f in load_graph(write_graph(tmp_path, graph)).flows] == [False, False, True, False]


def test_feedback_flow_into_an_ordinary_input_is_refused(tmp_path: Path, graph: dict) -> None:
    graph["flows"].append({"from": "relay", "to": "sink.in", "feedback": True})
    assert "cannot take feedback" in error_of(tmp_path, graph)


def test_two_flows_into_one_input_are_refused(tmp_path: Path, graph: dict) -> None:
    graph["operators"]["tap"] = {"type": "PassThrough"}
    graph["flows"] += [["source", "tap"], ["tap", "sink"]]
    assert error_of(tmp_path, graph) == "flows[3]: input 'sink.in' is already fed by flows[1]"


def test_override_of_a_missing_path_is_refused(tmp_path: Path, graph: dict) -> None:
    assert error_of(tmp_path, graph, ("operators.sorce.frames=3",)) == \
        "--set operators.sorce.frames: no key 'operators.sorce' in the graph"


def test_override_changes_existing_and_new_operator_parameters(tmp_path: Path, graph: dict) -> None:
    spec = load_graph(write_graph(tmp_path, graph), ["operators.source.frames=7", "operators.source.fps=12.5"])
    assert spec.operators["source"].params.frames == 7
    assert spec.operators["source"].params.fps == 12.5


def test_override_of_unknown_top_level_key_is_refused(tmp_path: Path, graph: dict) -> None:
    assert error_of(tmp_path, graph, ("schedulr.type=event",)) == "--set schedulr.type: no key 'schedulr' in the graph"


def test_unknown_top_level_key_suggests(tmp_path: Path, graph: dict) -> None:
    graph["flow"] = graph.pop("flows")
    assert error_of(tmp_path, graph) == "flow: unknown key (did you mean 'flows'?)"


def test_unknown_scheduler_type(tmp_path: Path, graph: dict) -> None:
    graph["scheduler"] = {"type": "fastest"}
    assert error_of(tmp_path, graph) == "scheduler.type: expected one of greedy, event, multithread, got 'fastest'"


def test_unknown_condition_key(tmp_path: Path, graph: dict) -> None:
    graph["operators"]["source"]["conditions"] = {"every": 3}
    assert error_of(tmp_path, graph).startswith("operators.source.conditions.every: unknown key")


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nope\.yaml: no such graph file"):
        load_graph(tmp_path / "nope.yaml")


def test_non_yaml_file_is_refused_with_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("operators: {source: [unclosed\n")
    with pytest.raises(InputError, match=r"bad\.yaml: not valid YAML \(line \d+\)"):
        load_graph(path)


def test_top_level_list_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- source\n- sink\n")
    with pytest.raises(InputError, match="must be a mapping"):
        load_graph(path)


def test_python_object_tag_is_refused_not_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.yaml"
    path.write_text(f"name: !!python/object/apply:os.system ['touch {marker}']\noperators: {{}}\n")
    with pytest.raises(InputError, match=r"evil\.yaml: not valid YAML"):
        load_graph(path)
    assert not marker.exists()


def test_type_never_imports_a_module_by_name(tmp_path: Path, graph: dict) -> None:
    graph["operators"]["relay"]["type"] = "os.system"
    assert error_of(tmp_path, graph).startswith("operators.relay.type: unknown operator type 'os.system'")


def test_plugin_module_without_table_is_refused(tmp_path: Path, graph: dict) -> None:
    graph["plugins"] = ["json"]
    assert error_of(tmp_path, graph) == "plugins[0]: plugin module 'json' defines no SURGSEG_OPERATORS dict"


def test_cli_check_prints_one_line_and_exits_2(tmp_path: Path, graph: dict) -> None:
    graph["operators"]["source"]["frames"] = "many"
    result = surgseg("graph", "check", str(write_graph(tmp_path, graph)))
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "operators.source.frames" in errors[0]


def test_cli_check_accepts_a_valid_graph(tmp_path: Path, graph: dict) -> None:
    result = surgseg("graph", "check", str(write_graph(tmp_path, graph)))
    assert result.returncode == 0, result.stderr


def test_cli_show_draws_a_picture(tmp_path: Path, graph: dict) -> None:
    picture = tmp_path / "graph.png"
    result = surgseg("graph", "show", str(write_graph(tmp_path, graph)), "--png", str(picture))
    assert result.returncode == 0, result.stderr
    assert "relay" in result.stdout and picture.stat().st_size > 1000
