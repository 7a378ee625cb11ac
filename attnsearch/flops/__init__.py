"""FLOPs and parameter counting: a traced count (every aten op) and an analytic one."""

from __future__ import annotations

from attnsearch.flops.counter import Count, UncountedOpError, count, count_params

__all__ = ["Count", "UncountedOpError", "count", "count_params"]
