"""The Pareto front keeps exactly the configurations nothing else beats on both latency and Dice."""

from surgseg.app.pareto import markdown_table, pareto_front


def test_dominated_points_are_dropped_and_front_sorted_by_latency() -> None:
    points = [(10.0, 0.80), (5.0, 0.70), (12.0, 0.79), (20.0, 0.90), (5.0, 0.65)]
    assert pareto_front(points) == [1, 0, 3]


def test_equal_points_are_both_kept() -> None:
    assert pareto_front([(1.0, 0.5), (1.0, 0.5)]) == [0, 1]


def test_markdown_table_lists_front_rows() -> None:
    rows = [{"label": "size=256", "metrics": {"dice": 0.8, "iou": 0.7, "boundary_f": 0.6},
             "latency_ms": {"p50": 100.0, "p95": 120.0, "p99": 130.0}}]
    assert markdown_table(rows, [0]).splitlines()[2] == "| size=256 | 0.800 | 0.700 | 0.600 | 100.0 | 120.0 | 130.0 |"
