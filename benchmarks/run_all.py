"""`make bench`: every benchmark that needs no GPU, then benchmarks/results/SUMMARY.md."""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys

from benchmarks.common import RESULTS, machine

log = logging.getLogger("bench")

CPU_BENCHMARKS = (
    ("graph_overhead", []),
    ("refiner_latency", []),
    ("sam2_stream", []),
    ("replay_fps", []),
    ("hands_free_seeding", []),
    ("realtime_cpu", []),
    ("sam2_backends", []),
    ("stale_prior", []),
    ("async_options", []),
    ("fov", []),
    ("real_frames_fp", []),
    ("capture_stream", []),
    ("instances", []),
)


def run(name: str, args: list[str]) -> bool:
    log.info("── %s", name)
    return subprocess.run([sys.executable, "-m", f"benchmarks.{name}", *args]).returncode == 0


def summary_markdown() -> str:
    """One section per result file: its machine and its top-level numbers."""
    facts = machine()
    lines = ["# Benchmark results", "",
             f"Summary written {facts['date']} on {facts['cpu']} ({facts['cores']} cores, GPU: {facts['gpu'] or 'none'}),",
             f"Python {facts['python']}; " + ", ".join(f"{k} {v}" for k, v in facts["packages"].items() if v), ""]
    for path in sorted(RESULTS.glob("*.json")):
        result = json.loads(path.read_text())
        ran = result.get("machine", {})
        lines += [f"## {result.get('benchmark', path.stem)}", "",
                  f"Ran {ran.get('date', '?')} on {ran.get('cpu', '?')} ({ran.get('cores', '?')} cores, "
                  f"GPU: {ran.get('gpu') or 'none'}). File: `{path.name}`.", ""]
        scalars = {k: v for k, v in result.items()
                   if isinstance(v, (int, float, bool)) or isinstance(v, str) and "\n" not in v and k != "benchmark"}
        if scalars:
            lines += ["| key | value |", "|---|---|"]
            lines += [f"| {k} | {round(v, 4) if isinstance(v, float) else v} |" for k, v in scalars.items()]
            lines.append("")
    return "\n".join(lines)


def main() -> int:
    from surgseg.engines.atomic import atomic_write_text

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--soak-frames", type=int, default=0,
                        help="also the soak run with this many frames (the full one is 20000: ~1.5 h on 2 cores)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    soak = [("soak", ["--frames", str(args.soak_frames), "--window", str(min(1000, args.soak_frames // 4))])]
    todo = list(CPU_BENCHMARKS) + (soak if args.soak_frames else [])
    failed = [name for name, extra in todo if not run(name, extra)]
    atomic_write_text(RESULTS / "SUMMARY.md", summary_markdown())
    log.info("wrote %s%s", RESULTS / "SUMMARY.md", f"; failed: {', '.join(failed)}" if failed else "")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
