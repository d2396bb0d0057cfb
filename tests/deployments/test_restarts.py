"""Pure: which exits restart a deployment, and the backoff's arithmetic."""
import pytest

from deployments.restarts import ALWAYS, NEVER, ON_FAILURE, Backoff, exhausted, restarts_after

BACKOFF = Backoff(base=1, cap=60, reset=600)


@pytest.mark.parametrize("policy, code, restarts", [
    (NEVER, 0, False), (NEVER, 1, False), (ON_FAILURE, 0, False), (ON_FAILURE, 1, True), (ON_FAILURE, -9, True),
    (ALWAYS, 0, True), (ALWAYS, 137, True),
])
def test_which_exits_restart(policy, code, restarts):
    assert restarts_after(policy, code) is restarts


def test_the_nth_quick_restart_waits_base_times_two_to_the_n_minus_one_up_to_the_cap():
    step, delays = 0, []
    for _ in range(9):
        step = BACKOFF.step_after(step, ran_seconds=1)
        delays.append(BACKOFF.delay(step))
    assert delays == [1, 2, 4, 8, 16, 32, 60, 60, 60]


def test_a_long_run_restarts_at_once_and_the_doubling_starts_afresh():
    step = BACKOFF.step_after(BACKOFF.step_after(0, 1), 1)  # two quick exits: the next waits 2 s
    assert BACKOFF.delay(step) == 2
    step = BACKOFF.step_after(step, ran_seconds=600)
    assert (step, BACKOFF.delay(step)) == (0, 0)
    assert BACKOFF.delay(BACKOFF.step_after(step, ran_seconds=5)) == 1


def test_a_container_that_never_ran_counts_as_a_quick_exit():
    assert BACKOFF.step_after(3, ran_seconds=None) == 4


def test_a_zero_base_never_waits():
    assert Backoff(0, 60, 600).delay(5) == 0


@pytest.mark.parametrize("count, cap, done", [(0, 0, True), (4, 5, False), (5, 5, True), (10_000, None, False)])
def test_max_restarts_caps_the_restarts_over_a_life(count, cap, done):
    assert exhausted(count, cap) is done
