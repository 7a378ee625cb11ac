"""Reliability: SIGKILL the driver at a random moment, resume, check the storage. Repeat.

    python benchmarks/kill_resume.py --loops 10

Each loop starts a small search (tiny space, synthetic data) in a fresh folder, kills the
driver with SIGKILL at a random moment of the whole run (uniform between 1 s and the
duration of a first, uninterrupted run of the same command, so every stage of a run can be
hit, later ones included), resumes it, and checks that it ended exactly right: exactly N
trials trained and complete, none RUNNING, no completed trial's training executed twice,
no trial completed before the kill executed again, the front equal to the storage's best
trials, and no process of the killed driver's Ray alive (the renamed agents included:
checked with the session record the killed driver wrote, before the resume replaced it).
Prints a line per loop and writes benchmarks/results/kill_resume.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import yaml

from attnsearch.results import open_study
from attnsearch.search._ray import stray_ray_pids

ARGS = [
    "--budget",
    "2G",
    "--space",
    "tiny",
    "--dataset",
    "synthetic",
    "--limit",
    "600",
    "--resolution",
    "8",
    "--width",
    "0.25",
    "--epochs",
    "3",
    "--concurrency",
    "2",
    "--sampler",
    "random",
]


def _study(run_dir: Path):
    return open_study(run_dir, yaml.safe_load((run_dir / "run.yaml").read_text())["study_name"])


def _command(i: int, trials: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "attnsearch",
        "run",
        *ARGS,
        "--seed",
        str(i),
        "--trials",
        str(trials),
        "--name",
        "k",
    ]


def full_run_seconds(trials: int) -> float:
    """The wall time of one uninterrupted run (the range of kill moments)."""
    cwd = Path(tempfile.mkdtemp(prefix="killloop-full-"))
    t0 = time.time()
    subprocess.run(_command(1000, trials), cwd=cwd, capture_output=True, timeout=1800, check=True)
    return time.time() - t0


def one_loop(i: int, trials: int, max_delay: float, rng: random.Random) -> dict:
    cwd = Path(tempfile.mkdtemp(prefix=f"killloop{i}-"))
    run_dir = cwd / "results" / "k"
    delay = rng.uniform(1.0, max_delay)
    cmd = _command(i, trials)
    proc = subprocess.Popen(
        cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    time.sleep(delay)
    finished_first = proc.poll() is not None
    kill_time = time.time()
    if not finished_first:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_session = None
    if (run_dir / "ray_session.json").exists():
        killed_session = json.loads((run_dir / "ray_session.json").read_text())
    before = set()
    if (run_dir / "study.journal").exists():
        before = {
            t.number
            for t in _study(run_dir).trials
            if t.state == optuna.trial.TrialState.COMPLETE and t.user_attrs.get("trained")
        }
    res = subprocess.run(
        [sys.executable, "-m", "attnsearch", "run", "--name", "k", "--resume"]
        if (run_dir / "run.yaml").exists()
        else cmd,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=900,
    )
    problems = []
    if res.returncode != 0:
        problems.append(f"resume exit {res.returncode}: {res.stderr.strip()[-300:]}")
    else:
        study = _study(run_dir)
        done = [
            t
            for t in study.trials
            if t.state == optuna.trial.TrialState.COMPLETE and t.user_attrs.get("trained")
        ]
        running = [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
        lines = (run_dir / "executions.jsonl").read_text().splitlines()
        ex = [json.loads(x) for x in lines if x.strip()]
        if len(done) != trials:
            problems.append(f"{len(done)} complete, expected {trials}")
        if running:
            problems.append(f"{len(running)} left RUNNING")
        twice = [t.number for t in done if sum(e["trial"] == t.number for e in ex) != 1]
        if twice:
            problems.append(f"trials executed more than once: {twice}")
        again = [e["trial"] for e in ex if e["trial"] in before and e["time"] > kill_time]
        if again:
            problems.append(f"completed before the kill, executed again: {again}")
        front = json.loads((run_dir / "pareto.json").read_text())
        if sorted(m["trial"] for m in front) != sorted(t.number for t in study.best_trials):
            problems.append("pareto.json differs from the storage's best trials")
        left = stray_ray_pids(killed_session) if not finished_first else set()
        if left:
            problems.append(f"processes of the killed driver's Ray still alive: {sorted(left)}")
    return {
        "loop": i,
        "kill_after_s": round(delay, 1),
        "killed": not finished_first,
        "complete_before_kill": len(before),
        "ok": not problems,
        "problems": problems,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loops", type=int, default=10)
    ap.add_argument("--trials", type=int, default=6)
    ap.add_argument(
        "--max-delay",
        type=float,
        default=None,
        help="latest kill, seconds (default: the duration of one uninterrupted run)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="benchmarks/results/kill_resume.json")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    max_delay = args.max_delay
    if max_delay is None:
        max_delay = full_run_seconds(args.trials)
        print(f"one uninterrupted run: {max_delay:.0f}s; kills uniform in [1, that]", flush=True)
    rows = []
    for i in range(args.loops):
        row = one_loop(i, args.trials, max_delay, rng)
        rows.append(row)
        print(
            f"loop {i}: kill after {row['kill_after_s']}s ({row['complete_before_kill']} "
            f"complete before) -> {'ok' if row['ok'] else 'WRONG: ' + '; '.join(row['problems'])}",
            flush=True,
        )
        _write(args.out, rows, max_delay)  # after each loop: a cut-short series is kept
    ok = sum(r["ok"] for r in rows)
    print(f"{ok}/{len(rows)} runs ended exactly right")


def _write(out: str, rows: list[dict], max_delay: float) -> None:
    ok = sum(r["ok"] for r in rows)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(
        json.dumps(
            {"loops": rows, "ok": ok, "total": len(rows), "max_delay_s": round(max_delay, 1)},
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
