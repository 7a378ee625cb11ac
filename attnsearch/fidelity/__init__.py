"""How far a proxy's ranking can be trusted: a seeded panel, the proxy, and a long reference.

A fixed panel of architectures of a space — the uniform networks (plain, and each
attention type with its defaults where the space allows them at the proxy width) plus
random buildable candidates spread evenly over the FLOPs range — is trained under the proxy
(several seeds) and under a reference schedule with ``reference_factor``× the proxy's
optimizer steps (same data, batch and width; more epochs). The report compares them:

* within-architecture sd (seed noise) against between-architecture sd (signal);
* Kendall τ-b and Spearman ρ of proxy means against reference means, with seeded
  bootstrap 95 % intervals; the same τ for trivial rankers (params, FLOPs);
* top-5 overlap; seconds per evaluation;
* the reference's and the proxy's agreement with themselves (τ of one seed's ranking
  against another's): a reference that barely reproduces its own order grades a proxy
  poorly, whatever τ the proxy gets against it;
* the same noise and ranking figures within each kind of member: the uniform networks a
  short proxy cannot train can carry the whole spread, the random ones are what a search
  compares;
* τ of several candidate *scores* computed from the same proxy runs (final accuracy, mean
  accuracy of the last epochs, final validation loss, sum of training losses), so that the
  best-ranking score can be chosen.

Every training run goes through :func:`attnsearch.evaluation.evaluate_architecture`, the
code path of a search trial. Runs can be spread over worker processes.

A panel is hours of training on a CPU, so every finished run can be appended to a
*journal* (JSON lines; ``journal=``): a later call with the same panel, proxy and
reference settings reads it and trains only the runs it lacks — after a crash, on another
day or machine, or with more seeds. ``stages=("proxy",)`` trains the proxy runs alone:
their report has the noise figures (within/between sd), and the ranking figures once the
reference runs are in the journal too.
"""

from __future__ import annotations

from attnsearch.fidelity._panel import FidelityError, PanelMember, build_panel
from attnsearch.fidelity._report import SCORES, stage_a, summarize
from attnsearch.fidelity._run import run_fidelity

__all__ = [
    "FidelityError",
    "PanelMember",
    "SCORES",
    "build_panel",
    "run_fidelity",
    "stage_a",
    "summarize",
]
