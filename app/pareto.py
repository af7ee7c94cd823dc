"""The latency/accuracy Pareto front of a sweep, as data, a picture and a markdown table."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats: lower latency (x) and higher accuracy (y), sorted by x."""
    front = []
    for i, (x, y) in enumerate(points):
        dominated = any((ox <= x and oy >= y) and (ox < x or oy > y) for j, (ox, oy) in enumerate(points) if j != i)
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def plot_front(rows: list[dict[str, Any]], front: list[int], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5))
    xs = [row["latency_ms"]["p50"] for row in rows]
    ys = [row["metrics"]["dice"] for row in rows]
    ax.scatter(xs, ys, color="0.65", label="configurations")
    ax.plot([xs[i] for i in front], [ys[i] for i in front], "-o", color="tab:red", label="Pareto front")
    for i in front:
        ax.annotate(rows[i]["label"], (xs[i], ys[i]), textcoords="offset points", xytext=(6, -10), fontsize=7)
    ax.set_xlabel("end-to-end latency p50 (ms/frame)")
    ax.set_ylabel("mean Dice")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def markdown_table(rows: list[dict[str, Any]], front: list[int]) -> str:
    lines = ["| configuration | Dice | IoU | Boundary F | p50 ms | p95 ms | p99 ms |", "|---|---|---|---|---|---|---|"]
    for i in front:
        row = rows[i]
        m, lat = row["metrics"], row["latency_ms"]
        lines.append(f"| {row['label']} | {m['dice']:.3f} | {m['iou']:.3f} | {m['boundary_f']:.3f} | "
                     f"{lat['p50']:.1f} | {lat['p95']:.1f} | {lat['p99']:.1f} |")
    return "\n".join(lines) + "\n"
