"""`-n auto` (pyproject's addopts) follows the machine: two workers a core this process may use,
or what xdist's own PYTEST_XDIST_AUTO_NUM_WORKERS says on a machine others share."""

from __future__ import annotations

import os

from tests.conftest import pytest_xdist_auto_num_workers


def test_auto_is_two_workers_a_usable_core(monkeypatch, pytestconfig):
    monkeypatch.delenv("PYTEST_XDIST_AUTO_NUM_WORKERS", raising=False)
    assert pytest_xdist_auto_num_workers(pytestconfig) == 2 * len(os.sched_getaffinity(0))


def test_xdists_own_variable_still_decides(monkeypatch, pytestconfig):
    monkeypatch.setenv("PYTEST_XDIST_AUTO_NUM_WORKERS", "1")
    assert pytest_xdist_auto_num_workers(pytestconfig) == 1
