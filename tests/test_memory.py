"""Memory checked before it is allocated (issue 18)."""

from __future__ import annotations

import pytest

from attnsearch import memory
from attnsearch.errors import InputError


def test_activation_bytes_scale_with_the_image_and_the_batch():
    small = memory.activation_bytes("resnet18", 0.25, (1, 8, 8), 1, 10)  # 1×1 at the end
    assert small > 0
    big = memory.activation_bytes("resnet18", 0.25, (1, 64, 64), 1, 10)
    assert 50 * small < big < 70 * small  # ~ 64× the pixels
    assert memory.activation_bytes("resnet18", 0.25, (1, 64, 64), 8, 10) == 8 * big


def test_check_fits_refuses_in_one_line(monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda device="cpu": 2 * 10**9)
    memory.check_fits("x", 10**9)
    with pytest.raises(InputError, match=r"x needs at least 3.0 GB of memory, more than the 2.0"):
        memory.check_fits("x", 3 * 10**9, advice="use less")
    monkeypatch.setattr(memory, "available_bytes", lambda device="cpu": None)
    memory.check_fits("x", 10**15)  # unknown: not refused


def test_available_bytes_reads_this_machine():
    have = memory.available_bytes()
    assert have is None or have > 0
