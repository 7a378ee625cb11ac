"""Reliability: SIGKILL the driver at a random moment, resume, check the storage. Repeat.

    python benchmarks/kill_resume.py --loops 10

Each loop starts a small search (tiny space, synthetic data) in a fresh folder, kills the
driver with SIGKILL after a random delay, resumes it until it finishes, and checks that it
ended exactly right: exactly N trials trained and complete, none RUNNING, no completed
trial's training executed twice, no trial completed before the kill executed again, the
front equal to the storage's best trials, and no Ray process of the killed driver alive.
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


def _alive(session: str) -> bool:
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if session.encode() in (proc / "cmdline").read_bytes():
                return True
        except OSError:
            continue
    return False


def one_loop(i: int, trials: int, max_delay: float, rng: random.Random) -> dict:
    cwd = Path(tempfile.mkdtemp(prefix=f"killloop{i}-"))
    run_dir = cwd / "results" / "k"
    delay = rng.uniform(2.0, max_delay)
    cmd = [
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
    proc = subprocess.Popen(
        cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    time.sleep(delay)
    finished_first = proc.poll() is not None
    kill_time = time.time()
    if not finished_first:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
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
        session_file = run_dir / "ray_session.json"
        if session_file.exists() and _alive(json.loads(session_file.read_text())["session"]):
            problems.append("Ray processes of the killed driver still alive")
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
    ap.add_argument("--max-delay", type=float, default=40.0, help="latest kill, seconds")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="benchmarks/results/kill_resume.json")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    rows = []
    for i in range(args.loops):
        row = one_loop(i, args.trials, args.max_delay, rng)
        rows.append(row)
        print(
            f"loop {i}: kill after {row['kill_after_s']}s ({row['complete_before_kill']} "
            f"complete before) -> {'ok' if row['ok'] else 'WRONG: ' + '; '.join(row['problems'])}",
            flush=True,
        )
    ok = sum(r["ok"] for r in rows)
    print(f"{ok}/{len(rows)} runs ended exactly right")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"loops": rows, "ok": ok, "total": len(rows)}, indent=2))


if __name__ == "__main__":
    main()
