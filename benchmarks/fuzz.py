"""Bad input at scale: a fuzzing campaign over every input surgseg reads, with counts.

    python -m benchmarks.fuzz                      # the full campaign (≈ 6,500 cases, ≤ 20 min on 2 cores)
    python -m benchmarks.fuzz --scale 0.05 --out - # a quick look, nothing written

Each case (`benchmarks.fuzz_cases`) makes one damaged or odd input from a seeded generator (so a case number
reproduces: `--only KIND:N`) and feeds it to surgseg, in worker processes with a time limit per case. A case is
CLEAN when it ends with exit 0, 1 or 2 and no traceback; bad input gets exit 2 with one ERROR line and no other
output than surgseg's own log lines (no Holoscan or library noise, no Python warnings); no temporary file is left,
JSON/JSONL outputs parse and an mp4 that was being written decodes. In-process kinds judge the reader's exception
(`InputError` with a one-line message, or nothing) and anything written to file descriptor 2 meanwhile.
Results: `benchmarks/results/fuzz.json` (cases per kind, outcomes by exit code, every unclean case listed).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmarks.fuzz_cases import KINDS, MODEL_SIZE, PROCESS_KINDS, Context, Outcome

CAMPAIGN = {"graph_yaml": 900, "graph_set": 700, "clicks_csv": 500, "prompts_json": 500, "seed_mask": 300,
            "colour_map": 400, "mask_pixels": 500, "index_jsonl": 500, "picture": 700, "video_decode": 700,
            "data_index": 300, "graph_video": 90, "graph_images": 30, "cli_data_index": 40, "cli_graph_check": 40}
"""Cases per kind in the full campaign (graph and CLI processes cost 2-4 s each on 2 cores: sampled)."""
CASE_LIMIT_S = 30.0
PROCESS_LIMIT_S = 150.0
LOG_LINE = re.compile(r"^\d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+: ")
ERROR_LINE = re.compile(r"^\d\d:\d\d:\d\d (ERROR|CRITICAL) ")


class CaseTimeout(BaseException):
    """Raised in a case that ran past its time limit."""


# ------------------------------------------------------------------------------------------------ judging
def judge_output(code: int | None, stderr: str, out: Path, index: Path | None, video: Path | None = None) -> Outcome:
    """A CLI run's outcome from its exit code, its stderr and the files it left in `out`."""
    if code is None:
        return Outcome(None, False, "hang: ran past its time limit")
    if code < 0:
        return Outcome(None, False, f"crash: killed by {signal.Signals(-code).name}")
    if code not in (0, 1, 2):
        return Outcome(code, False, f"exit code {code}")
    lines = [line for line in stderr.splitlines() if line.strip()]
    if "Traceback (most recent call last)" in stderr:
        return Outcome(code, False, f"traceback: {_last_line(stderr)}")
    foreign = [line for line in lines if not LOG_LINE.match(line)]
    if foreign:
        return Outcome(code, False, f"noise on stderr: {foreign[0][:200]}")
    errors = [line for line in lines if ERROR_LINE.match(line)]
    if code == 2 and len(errors) != 1:
        return Outcome(code, False, f"bad input with {len(errors)} error lines: {' | '.join(errors)[:300]}")
    return _judge_files(code, out, index, video)


def _judge_files(code: int, out: Path, index: Path | None, video: Path | None) -> Outcome:
    if out.is_dir():
        for path in sorted(out.rglob("*")):
            if path.name.startswith("."):
                return Outcome(code, False, f"left behind: {path.relative_to(out)}")
            if path.suffix == ".json" and path.is_file():
                try:
                    json.loads(path.read_text())
                except (ValueError, UnicodeDecodeError):
                    return Outcome(code, False, f"half-written: {path.name}")
    if index is not None:
        from surgseg.engines.errors import InputError
        from surgseg.training.dataset_index import read_index

        try:
            rows = read_index(index)
        except InputError as exc:
            return Outcome(code, False, f"half-written index: {exc}")
        missing = [row["mask_path"] for row in rows if not Path(row["mask_path"]).is_file()]
        if missing:
            return Outcome(code, False, f"index names a missing mask: {missing[0]}")
    if video is not None and video.exists():
        from surgseg.engines.errors import InputError
        from surgseg.engines.video.io import VideoReader

        try:
            with VideoReader(video) as reader:
                frames = sum(1 for _ in reader)
        except InputError as exc:
            return Outcome(code, False, f"unplayable output video: {exc}")
        if frames == 0:
            return Outcome(code, False, "output video holds no frame")
    return Outcome(code, True)


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


def run_case(kind: str, number: int, seed: int, ctx: Context, limit_s: float = CASE_LIMIT_S) -> Outcome:
    """One case in this process: a fresh scratch folder, fd 2 captured, a time limit (SIGALRM)."""
    from surgseg.engines.errors import InputError

    shutil.rmtree(ctx.work, ignore_errors=True)
    ctx.work.mkdir(parents=True)
    rng = random.Random(f"{seed}:{kind}:{number}")
    in_process = kind not in PROCESS_KINDS
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, limit_s if in_process else PROCESS_LIMIT_S)
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as native:
        os.dup2(native.fileno(), 2)
        try:
            outcome = KINDS[kind](rng, ctx) or Outcome(0, True)
        except InputError as exc:
            message = str(exc)
            outcome = Outcome(2, "\n" not in message and bool(message.strip()),
                              "" if "\n" not in message else f"multi-line message: {message[:200]!r}")
        except CaseTimeout:
            outcome = Outcome(None, False, "hang: ran past its time limit")
        except Exception as exc:  # noqa: BLE001 (the point: any other exception type is a finding)
            outcome = Outcome(1, False, f"{type(exc).__name__}: {str(exc)[:160]} at {_where(exc)}")
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        native.seek(0)
        noise = native.read().decode(errors="replace").strip()
    foreign = [line for line in noise.splitlines() if line.strip() and (not LOG_LINE.match(line) or ERROR_LINE.match(line))]
    if foreign and in_process and outcome.clean:
        outcome = Outcome(outcome.exit, False, f"noise on stderr: {foreign[0][:200]}")
    return outcome


def _on_alarm(signum: int, frame: Any) -> None:
    raise CaseTimeout()


def _where(exc: BaseException) -> str:
    """file:line of the innermost surgseg frame of the exception's traceback."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "/surgseg/" in f.filename or "/work/" in f.filename and "site-packages" not in f.filename]
    last = (ours or frames)[-1]
    return f"{Path(last.filename).name}:{last.lineno}"


# ------------------------------------------------------------------------------------------------ workers
def worker_main(ctx_json: str) -> None:
    """Read `kind number seed` lines on stdin, answer one JSON outcome line each (stdout itself goes to /dev/null)."""
    results = os.fdopen(os.dup(1), "w", buffering=1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    fields = json.loads(ctx_json)
    ctx = Context(Path(fields["seeds"]), Path(fields["artifact"]), Path(fields["work"]))
    import torch

    from surgseg.app.cli import configure_logging

    torch.set_num_threads(1)
    configure_logging(verbose=False)  # what a user of the CLI would see on stderr
    for line in sys.stdin:
        kind, number, seed = line.split()
        outcome = run_case(kind, int(number), int(seed), ctx)
        results.write(json.dumps(asdict(outcome)) + "\n")


class Worker:
    """A `python -m benchmarks.fuzz _worker` process, its own session (so a hung case's children die with it)."""

    def __init__(self, ctx: Context, slot: int) -> None:
        fields = {"seeds": str(ctx.seeds), "artifact": str(ctx.artifact), "work": str(ctx.work / f"w{slot}")}
        self.log = open(ctx.work / f"worker{slot}.log", "ab")
        self.process = subprocess.Popen(
            ["nice", "-n", "10", sys.executable, "-m", "benchmarks.fuzz", "_worker", json.dumps(fields)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, start_new_session=True,
            cwd=Path(__file__).resolve().parents[1], env={**os.environ, "OMP_NUM_THREADS": "1"})
        self.case: tuple[str, int] | None = None
        self.deadline = 0.0
        self.buffer = b""

    def send(self, kind: str, number: int, seed: int) -> None:
        self.case = (kind, number)
        self.deadline = time.monotonic() + (PROCESS_LIMIT_S if kind in PROCESS_KINDS else CASE_LIMIT_S) + 60
        self.process.stdin.write(f"{kind} {number} {seed}\n".encode())
        self.process.stdin.flush()

    def kill(self) -> int | None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        code = self.process.wait()
        self.log.close()
        return code


def run_campaign(counts: dict[str, int], seed: int, workers: int, folder: Path) -> dict[str, Any]:
    """Every case of `counts` over `workers` processes; the result payload."""
    ctx = prepare(folder)
    cases = [(kind, n) for kind, count in counts.items() for n in range(count)]
    random.Random(seed).shuffle(cases)  # mix cheap and costly kinds across the workers
    pending = list(reversed(cases))
    pool = [Worker(ctx, slot) for slot in range(workers)]
    outcomes: list[tuple[str, int, Outcome]] = []
    started = time.monotonic()
    reported = 0
    for slot, worker in enumerate(pool):
        if pending:
            worker.send(*pending.pop(), seed)
    while any(worker.case for worker in pool):
        busy = {worker.process.stdout.fileno(): worker for worker in pool if worker.case}
        ready, _, _ = select.select(list(busy), [], [], 1.0)
        for fd in ready:
            worker = busy[fd]
            chunk = os.read(fd, 65536)
            if chunk:
                worker.buffer += chunk
                while b"\n" in worker.buffer:
                    line, worker.buffer = worker.buffer.split(b"\n", 1)
                    outcomes.append((*worker.case, Outcome(**json.loads(line))))
                    worker.case = None
                    if pending:
                        worker.send(*pending.pop(), seed)
                continue
            code = worker.kill()  # the worker died inside a case: a crash
            name = signal.Signals(-code).name if code and code < 0 else f"exit {code}"
            outcomes.append((*worker.case, Outcome(None, False, f"crash: worker died ({name})")))
            _replace(pool, worker, ctx, pending, seed)
        for worker in [w for w in pool if w.case and time.monotonic() > w.deadline]:
            worker.kill()
            outcomes.append((*worker.case, Outcome(None, False, "hang: past the time limit, killed")))
            _replace(pool, worker, ctx, pending, seed)
        if len(outcomes) // 250 > reported:
            reported = len(outcomes) // 250
            print(f"{len(outcomes)}/{len(cases)} cases, {time.monotonic() - started:.0f} s", flush=True)
    for worker in pool:
        worker.process.stdin.close()
        worker.process.wait()
        worker.log.close()
    return summarise(outcomes, time.monotonic() - started, seed, workers)


def _replace(pool: list[Worker], worker: Worker, ctx: Context, pending: list, seed: int) -> None:
    slot = pool.index(worker)
    pool[slot] = Worker(ctx, slot)
    if pending:
        pool[slot].send(*pending.pop(), seed)


def prepare(folder: Path) -> Context:
    """Seed media and a tiny random-weight refiner artefact at the campaign's model size."""
    from benchmarks.fuzz_media import write_seeds

    folder.mkdir(parents=True, exist_ok=True)
    seeds = folder / "seeds"
    write_seeds(seeds)
    return Context(seeds=seeds, artifact=tiny_refiner(folder / "refiner"), work=folder)


def tiny_refiner(folder: Path) -> Path:
    """Export a random 'nano' refiner at MODEL_SIZE into `folder`; returns its ONNX path."""
    onnx = folder / "models" / "refiner.onnx"
    if onnx.exists():
        return onnx
    import torch

    from surgseg.training.export import ExportConfig, export_refiner
    from surgseg.training.refiner_net import TinyRefiner, checkpoint_payload, refiner_config

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = TinyRefiner(refiner_config("nano", num_classes=2))
    payload = checkpoint_payload(model, input_size=MODEL_SIZE, classes=["background", "instrument"],
                                 data_fingerprint="sha256:fuzz", val_metrics={"mean_dice": 0.0}, epoch=0)
    torch.save(payload, folder / "nano.pt")
    export_refiner(ExportConfig(checkpoint=folder / "nano.pt", out=folder / "models", val_frames=2))
    return onnx


def summarise(outcomes: list[tuple[str, int, Outcome]], wall_s: float, seed: int, workers: int) -> dict[str, Any]:
    per_kind: dict[str, dict[str, Any]] = {}
    for kind, _, outcome in outcomes:
        entry = per_kind.setdefault(kind, {"tried": 0, "exit": Counter(), "unclean": 0})
        entry["tried"] += 1
        entry["exit"][_label(outcome)] += 1
        entry["unclean"] += not outcome.clean
    unclean = [{"kind": kind, "case": number, "reason": outcome.reason}
               for kind, number, outcome in sorted(outcomes, key=lambda item: item[:2]) if not outcome.clean]
    return {
        "cases": len(outcomes),
        "clean": len(outcomes) - len(unclean),
        "unclean_count": len(unclean),
        "outcomes": dict(Counter(_label(outcome) for _, _, outcome in outcomes)),
        "per_kind": {kind: {**entry, "exit": dict(entry["exit"])} for kind, entry in sorted(per_kind.items())},
        "unclean": unclean,
        "wall_s": round(wall_s, 1),
        "workers": workers,
        "seed": seed,
        "case_limit_s": CASE_LIMIT_S,
        "process_limit_s": PROCESS_LIMIT_S,
        "reproduce": "python -m benchmarks.fuzz --only KIND:CASE --seed SEED",
    }


def _label(outcome: Outcome) -> str:
    if outcome.exit is None:
        return "hang" if outcome.reason.startswith("hang") else "crash"
    return f"exit_{outcome.exit}"


def scaled(scale: float) -> dict[str, int]:
    return {kind: max(1, round(count * scale)) for kind, count in CAMPAIGN.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the full campaign's cases per kind")
    parser.add_argument("--kinds", default="", help="comma-separated kinds (default: all)")
    parser.add_argument("--only", default="", help="one case, KIND:NUMBER, run here with its reason printed")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--folder", type=Path, default=Path("out/fuzz"), help="scratch folder (seeds, cases)")
    parser.add_argument("--out", default="fuzz", help="result name under benchmarks/results ('-': print only)")
    args = parser.parse_args(argv)
    args.folder = args.folder.resolve()
    if args.only:
        kind, number = args.only.split(":")
        ctx = prepare(args.folder)
        outcome = run_case(kind, int(number), args.seed, Context(ctx.seeds, ctx.artifact, args.folder / "only"))
        print(json.dumps(asdict(outcome)))
        return 0 if outcome.clean else 1
    counts = scaled(args.scale)
    if args.kinds:
        counts = {kind: counts[kind] for kind in args.kinds.split(",")}
    payload = run_campaign(counts, args.seed, args.workers, args.folder)
    print(f"{payload['cases']} cases in {payload['wall_s']:.0f} s: {payload['outcomes']}; "
          f"{payload['unclean_count']} unclean")
    for item in payload["unclean"][:40]:
        print(f"  UNCLEAN {item['kind']}:{item['case']}: {item['reason']}")
    if args.out != "-":
        from benchmarks.common import write_result

        print(f"wrote {write_result(args.out, payload)}")
    return 0 if payload["unclean_count"] == 0 else 1


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "_worker":
        worker_main(sys.argv[2])
    else:
        sys.exit(main())
