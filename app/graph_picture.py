"""Human views of a graph: a table of operators and flows, and a left-to-right picture."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from surgseg.app.graph_spec import GraphSpec


def describe(spec: GraphSpec) -> Table:
    table = Table(title=f"graph '{spec.name}' ({spec.path}) · device {spec.device} · scheduler {spec.scheduler.type}")
    for column in ("operator", "type", "inputs", "outputs", "feeds"):
        table.add_column(column)
    for name, op in spec.operators.items():
        cls = op.type.cls
        feeds = [f"{f.source_port or '*'} → {f.target}.{f.target_port or '*'}{' (feedback)' if f.feedback else ''}"
                 for f in spec.flows if f.source == name]
        inputs = ", ".join(getattr(cls, "inputs", ())) if not op.type.builtin else "(built-in)"
        outputs = ", ".join(getattr(cls, "outputs", ())) if not op.type.builtin else "(built-in)"
        table.add_row(name, op.type.name, inputs, outputs, "\n".join(feeds))
    return table


def layers(spec: GraphSpec) -> dict[str, int]:
    """Column of each operator: the longest forward path from a source."""
    depth = {name: 0 for name in spec.operators}
    for _ in spec.operators:
        for flow in spec.flows:
            if not flow.feedback:
                depth[flow.target] = max(depth[flow.target], depth[flow.source] + 1)
    return depth


def draw(spec: GraphSpec, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    depth = layers(spec)
    rows: dict[int, int] = {}
    position = {}
    for name in spec.operators:
        column = depth[name]
        position[name] = (column * 3.0, -rows.get(column, 0) * 1.4)
        rows[column] = rows.get(column, 0) + 1
    width = 3.0 * (max(depth.values()) + 1)
    fig, ax = plt.subplots(figsize=(max(6.0, width * 0.9), 1.6 + 1.2 * max(rows.values())))
    for flow in spec.flows:
        (x0, y0), (x1, y1) = position[flow.source], position[flow.target]
        style = dict(arrowstyle="->", color="tab:red" if flow.feedback else "black",
                     linestyle="--" if flow.feedback else "-",
                     connectionstyle="arc3,rad=-0.35" if flow.feedback else "arc3")
        ax.annotate("", xy=(x1 - 1.0, y1), xytext=(x0 + 1.0, y0), arrowprops=style)
    for name, (x, y) in position.items():
        ax.text(x, y, f"{name}\n{spec.operators[name].type.name}", ha="center", va="center", fontsize=8,
                bbox=dict(boxstyle="round", facecolor="#dbe9f6", edgecolor="#2a5d8a"))
    ax.set_xlim(-1.5, width - 1.5)
    ax.set_ylim(-1.4 * max(rows.values()), 1.0)
    ax.axis("off")
    ax.set_title(f"{spec.name}  (dashed red: feedback)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
