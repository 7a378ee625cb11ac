"""`attnsearch fidelity`, unchanged but for the order in which it trains the runs it lacks.

Stage A's reference half (RESULTS §16) is 10 runs of 65-95 min each on one core; a session
of this project is 3 hours. The CLI trains missing reference runs in panel order (plain,
SE, CBAM, CA, EPSA), which after plain and SE puts the two dearest pairs (CBAM, CA: ~1.4x
the cost per step) back to back: more than one session. This wrapper trains CBAM, then
EPSA, then CA, so that each session's pairs finish inside it (a run cut mid-way is lost).
Only the order of the job list changes: each job, its seed, its settings, its journal key
and its record are what the CLI produces, and every CLI argument is passed through.

    python benchmarks/stage_a_ordered.py fidelity --space resnet50 ... --stage reference
"""

from __future__ import annotations

import sys

from attnsearch.fidelity import _run

ORDER = {2: 0, 4: 1, 3: 2}  # panel member index -> place: all-CBAM, all-EPSA, all-CA
_execute = _run._execute


def _ordered(jobs, *args):
    def place(job):
        return (job["schedule"] != "reference", ORDER.get(job["member"], -1), job["seed"])

    jobs = sorted(jobs, key=place)
    print("order:", [(j["member"], j["schedule"], j["seed"]) for j in jobs], flush=True)
    return _execute(jobs, *args)


if __name__ == "__main__":  # the spawned workers import this file again: only the parent runs
    _run._execute = _ordered
    from attnsearch.cli import main

    sys.argv = ["attnsearch", *sys.argv[1:]]
    main()
