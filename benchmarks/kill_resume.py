"""Reliability: SIGKILL the driver at a random moment, resume, check the storage. Repeat.

    python benchmarks/kill_resume.py --loops 10

Each loop starts a small search (tiny space, synthetic data; with the default references
and repeats, so a run has three stages: the papers' networks, the search's own trials, the
repeats of the front) in a fresh folder, kills the driver with SIGKILL at a random moment
of the whole run (uniform between 1 s and the duration of a first, uninterrupted run of the
same command, so every stage can be hit), resumes it, and checks that it ended exactly
right: exactly N search trials trained and complete; every reference of the uninterrupted
run with exactly ``repeats`` complete seeds; every front member (and trial within noise of
it) with exactly ``repeats`` seeds, no repeat asked twice; none RUNNING or WAITING; no
trained trial's training executed twice; no trial completed before the kill executed again;
``pareto.json`` equal to the front on means computed from the storage; and no process of the
killed driver's Ray alive (the renamed agents included: checked with the session record the
killed driver wrote, before the resume replaced it). Prints a line per loop (with the stage
the kill hit) and writes benchmarks/results/kill_resume.json.
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
from attnsearch.search._session import stray_ray_pids

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


def _end_state(run_dir: Path) -> dict:
    """What the storage holds once a run finished: trained trials by role, and the front."""
    from attnsearch.results import front_on_means, measurements

    study = _study(run_dir)
    by_role = _trained_by_role(study)
    ms = measurements(study)
    return {
        "study": study,
        "by_role": by_role,
        "references": {name: len(m.accuracies) for name, m in ms.references.items()},
        "front": sorted(m.trial for m in front_on_means(ms.search)),
    }


def full_run(trials: int) -> tuple[float, list[str], int]:
    """One uninterrupted run: its wall time (the range of kill moments), the references it
    evaluated and its repeats per measured architecture."""
    cwd = Path(tempfile.mkdtemp(prefix="killloop-full-"))
    t0 = time.time()
    subprocess.run(_command(1000, trials), cwd=cwd, capture_output=True, timeout=1800, check=True)
    seconds = time.time() - t0
    run_dir = cwd / "results" / "k"
    repeats = int(yaml.safe_load((run_dir / "run.yaml").read_text())["repeats"])
    return seconds, sorted(_end_state(run_dir)["references"]), repeats


def _trained_by_role(study) -> dict[str, list]:
    """Complete, trained trials by role: search, reference, repeat."""
    from attnsearch.results import ROLE_REFERENCE, ROLE_REPEAT
    from attnsearch.rundir import TrialRecord

    by_role: dict[str, list] = {ROLE_REFERENCE: [], "search": [], ROLE_REPEAT: []}
    for t in study.trials:
        if t.state == optuna.trial.TrialState.COMPLETE and t.user_attrs.get("trained"):
            by_role[TrialRecord.of(t).role or "search"].append(t)
    return by_role


def _stage(study) -> str:
    """Which stage a killed run was in: how many trials of each role had trained."""
    return " ".join(f"{k}={len(v)}" for k, v in _trained_by_role(study).items())


def one_loop(
    i: int, trials: int, max_delay: float, rng: random.Random, references: list[str], repeats: int
) -> dict:
    from attnsearch.results import repeats_needed

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
    before: set[int] = set()
    stage = "before the storage existed"
    if (run_dir / "study.journal").exists():
        study = _study(run_dir)
        before = {t.number for ts in _trained_by_role(study).values() for t in ts}
        stage = _stage(study)
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
        end = _end_state(run_dir)
        study, by_role = end["study"], end["by_role"]
        left_over = [
            t.number
            for t in study.trials
            if t.state in (optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.WAITING)
        ]
        lines = (run_dir / "executions.jsonl").read_text().splitlines()
        ex = [json.loads(x) for x in lines if x.strip()]
        if len(by_role["search"]) != trials:
            problems.append(f"{len(by_role['search'])} search trials complete, expected {trials}")
        if sorted(end["references"]) != references:
            problems.append(f"references {sorted(end['references'])}, expected {references}")
        wrong = {k: n for k, n in end["references"].items() if n != repeats}
        if wrong:
            problems.append(f"references without exactly {repeats} seeds: {wrong}")
        if repeats_needed(study, repeats):
            problems.append(f"repeats still missing: {repeats_needed(study, repeats)}")
        per = {}
        for t in by_role["repeat"]:
            per[t.user_attrs["repeat_of"]] = per.get(t.user_attrs["repeat_of"], 0) + 1
        doubled = {k: n for k, n in per.items() if n > repeats - 1}
        if doubled:
            problems.append(f"trials repeated more than {repeats - 1} times: {doubled}")
        if left_over:
            problems.append(f"trials left RUNNING or WAITING: {left_over}")
        done = [t for trials_ in by_role.values() for t in trials_]
        twice = [t.number for t in done if sum(e["trial"] == t.number for e in ex) != 1]
        if twice:
            problems.append(f"trials executed more than once: {twice}")
        again = [e["trial"] for e in ex if e["trial"] in before and e["time"] > kill_time]
        if again:
            problems.append(f"completed before the kill, executed again: {again}")
        front = json.loads((run_dir / "pareto.json").read_text())
        if sorted(m["trial"] for m in front) != end["front"]:
            problems.append("pareto.json differs from the front on means of the storage")
        left = stray_ray_pids(killed_session) if not finished_first else set()
        if left:
            problems.append(f"processes of the killed driver's Ray still alive: {sorted(left)}")
    return {
        "loop": i,
        "kill_after_s": round(delay, 1),
        "killed": not finished_first,
        "complete_before_kill": len(before),
        "stage_at_kill": stage,
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
    seconds, references, repeats = full_run(args.trials)
    max_delay = args.max_delay if args.max_delay is not None else seconds
    print(
        f"one uninterrupted run: {seconds:.0f}s, references {references}, {repeats} seeds "
        f"each; kills uniform in [1, {max_delay:.0f}]s",
        flush=True,
    )
    rows = []
    for i in range(args.loops):
        row = one_loop(i, args.trials, max_delay, rng, references, repeats)
        rows.append(row)
        print(
            f"loop {i}: kill after {row['kill_after_s']}s ({row['stage_at_kill']}) "
            f"-> {'ok' if row['ok'] else 'WRONG: ' + '; '.join(row['problems'])}",
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
