"""``inv faults``: the fault tests at 10,000 files, one fault at a time, with a table row each."""

from __future__ import annotations

import sys

import pytest
from invoke import Task

from tasks import fault_runs as faults

pytestmark = pytest.mark.unit


def test_inv_exposes_the_faults_task_with_10000_files_by_default() -> None:
    import tasks

    task = tasks.faults
    assert isinstance(task, Task)
    assert task.body.__defaults__[0] == 10_000


@pytest.mark.integration  # (a pytest collection in a subprocess: seconds)
def test_every_fault_test_is_collected_and_only_filters_them() -> None:
    everything = faults.fault_ids(sys.executable)
    assert len(everything) >= 10 and all(i.startswith("tests/e2e/test_faults.py::test_") for i in everything)
    assert faults.fault_ids(sys.executable, "replaced_between") == [
        "tests/e2e/test_faults.py::test_an_object_replaced_between_its_scan_and_its_action_is_not_touched"
    ]


def test_a_row_says_survived_only_for_a_passing_fault() -> None:
    node = "tests/e2e/test_faults.py::test_scan_worker_killed_mid_job"
    assert (
        faults.row(node, 10_000, True, 612.4)
        == "| scan worker killed mid job | 10,000 | yes | 0 | 0 | 612 s |"
    )
    assert "| NO | ? | ? |" in faults.row(node, 10_000, False, 1.0)
