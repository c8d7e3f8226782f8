"""No drift alert, promotion or rollback is dropped by GitHub's concurrency rule, applied to the workflows' own
`concurrency:` settings (a model of GitHub's scheduler in tests/release/ghfake.py)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.release.ghfake import ConcurrencyGroup
from tests.release.test_workflows import WORKFLOWS, jobs

# The jobs whose runs each carry something that must not be lost: an alert, a promotion, a rollback.
MUST_NOT_DROP = [
    ("model-drift.yml", "respond"),
    ("promote-model.yml", "from-registry"),
    ("promote-model.yml", "stack-to-stack"),
    ("rollback.yml", "propose"),
]


def group_of(workflow: str, job: str) -> ConcurrencyGroup:
    settings: dict[str, Any] = jobs(WORKFLOWS / workflow)[job]["concurrency"]
    return ConcurrencyGroup.from_settings(settings)


@pytest.mark.parametrize(("workflow", "job"), MUST_NOT_DROP, ids=str)
def test_three_runs_in_one_group_all_run(workflow: str, job: str) -> None:
    group = group_of(workflow, job)
    for run in ("first", "second", "third"):
        group.arrive(run)
    while group.running is not None:
        group.finish()

    assert group.cancelled == []
    assert group.ran == ["first", "second", "third"], "in the order they arrived"


def test_the_model_is_githubs_rule_a_third_run_cancels_the_pending_second() -> None:
    """What the workflows had: one pending run per group; the newer pending run replaces the older."""
    group = ConcurrencyGroup.from_settings({"group": "g", "cancel-in-progress": False})
    for run in ("first", "second", "third"):
        group.arrive(run)
    while group.running is not None:
        group.finish()
    assert group.cancelled == ["second"]
    assert group.ran == ["first", "third"]


def test_queue_max_holds_at_most_100_pending_and_refuses_cancel_in_progress() -> None:
    group = ConcurrencyGroup.from_settings({"group": "g", "queue": "max"})
    for n in range(102):
        group.arrive(str(n))
    assert len(group.pending) == 100
    assert group.cancelled == ["101"], "the run that finds the queue full is cancelled"
    with pytest.raises(ValueError, match="queue: max"):
        ConcurrencyGroup.from_settings({"group": "g", "queue": "max", "cancel-in-progress": True})
