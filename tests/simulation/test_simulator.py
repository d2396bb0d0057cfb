"""The trace-driven simulator of bench/simulate.py on tiny hand-made traces (pure, no database)."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from simulate import POLICIES, FifoPolicy, PlannerPolicy, bounds, simulate  # noqa: E402
from traces import HIGH, LOW, NORMAL, Habits, Job, Trace, make_habits, make_trace  # noqa: E402


def job(id: int, arrival: int, gpu: int, duration: int, priority: int = NORMAL) -> Job:
    return Job(id, arrival, priority, gpu, 4 * gpu, 32 * gpu, duration)


def trace(gpus: int, horizon: int, *jobs: Job) -> Trace:
    return Trace("tiny", gpus, 4 * gpus, 32 * gpus, horizon, jobs)


@pytest.mark.parametrize("key", POLICIES)
def test_a_single_deployment_starts_at_once_and_completes_at_its_duration(key):
    one = trace(4, 1_000, job(1, 10, 2, 300))

    result = simulate(one, POLICIES[key](one, 600))

    assert result.completed == 1
    assert result.first_starts[1] == 10
    assert result.utilisation == pytest.approx(2 * 300 / (4 * 1_000))
    assert result.preemptions_max == 0 and result.lost == 0


def test_a_deployment_ending_after_the_horizon_does_not_count_as_completed():
    one = trace(4, 1_000, job(1, 10, 2, 991))

    result = simulate(one, PlannerPolicy(one, 600))

    assert result.completed == 0
    assert result.utilisation == pytest.approx(2 * 990 / (4 * 1_000))


def small_behind_large() -> Trace:
    # 2 of 4 GPUs run until 100; a 4-GPU deployment queues at 1; a 1-GPU one arrives at 2.
    return trace(4, 1_000, job(1, 0, 2, 100), job(2, 1, 4, 50), job(3, 2, 1, 20))


def test_fifo_without_backfill_blocks_a_small_deployment_behind_a_large_one():
    fifo = small_behind_large()

    result = simulate(fifo, FifoPolicy(fifo, by_priority=True, preempt=False, name="fifo"))

    assert result.first_starts[2] == 100
    assert result.first_starts[3] == 150
    assert result.longest == 148


def test_the_planner_backfills_the_small_deployment_past_the_large_one():
    backfill = small_behind_large()

    result = simulate(backfill, PlannerPolicy(backfill, None))

    assert result.first_starts[3] == 2
    assert result.first_starts[2] == 100


def test_a_preempted_run_counts_as_lost_work_and_restarts_in_full():
    # One GPU: a low-priority run of 100 s is preempted at 30 by a high-priority one of 10 s.
    preempting = trace(1, 1_000, job(1, 0, 1, 100, LOW), job(2, 30, 1, 10, HIGH))

    for policy in (PlannerPolicy(preempting, 600), FifoPolicy(preempting, by_priority=True, preempt=True, name="p")):
        result = simulate(preempting, policy)

        assert result.completed == 2
        assert (result.preemptions_mean, result.preemptions_max) == (0.5, 1)
        assert result.lost == pytest.approx(30 / (30 + 10 + 100))  # held 140 GPU-seconds, 30 thrown away
        assert result.utilisation == pytest.approx(110 / 1_000)
        assert result.held == pytest.approx(140 / 1_000)


def test_strict_priority_fifo_without_preemption_lets_the_low_priority_run_finish():
    preempting = trace(1, 1_000, job(1, 0, 1, 100, LOW), job(2, 30, 1, 10, HIGH))

    result = simulate(preempting, FifoPolicy(preempting, by_priority=True, preempt=False, name="p"))

    assert result.first_starts[2] == 100
    assert result.lost == 0


def stream_of_small() -> Trace:
    # Two GPUs kept busy by 1-GPU runs of 100 s, a new one arriving each time one ends; the 2-GPU one
    # queued at 60 (id 3) never sees both free at once unless something is held for it.
    small = [job(4 + k, 100 + 50 * k, 1, 100) for k in range(30)]
    return trace(2, 1_500, job(1, 0, 1, 100), job(2, 50, 1, 100), job(3, 60, 2, 10), *small)


def test_without_reservations_a_large_deployment_starves_behind_a_stream_of_small_ones():
    starving = stream_of_small()

    result = simulate(starving, PlannerPolicy(starving, None))

    assert result.first_starts[3] == -1
    assert result.longest == 1_500 - 60


def test_a_reservation_starts_it_once_what_held_its_resources_ends():
    starving = stream_of_small()

    result = simulate(starving, PlannerPolicy(starving, 0))

    # Due at once: the GPU freed at 100 is held for it, the one freed at 150 completes its demand.
    assert result.first_starts[3] == 150
    assert result.reserved_wait == 50


def test_a_reservation_waits_for_reserve_after():
    starving = stream_of_small()

    result = simulate(starving, PlannerPolicy(starving, 100))

    # Due at 160: the GPU freed at 200 is held, the one freed at 250 (taken at 150, before it was due) completes it.
    assert result.first_starts[3] == 250


@pytest.mark.parametrize("reserve_after", [None, 0, 600])
def test_skipping_passes_that_cannot_start_anything_changes_no_figure(reserve_after):
    # A small cluster under load: queues, backfill, preemptions and reservations all happen.
    busy = make_trace(400, seed=5, gpus=32, load=0.8)

    skipping = simulate(busy, PlannerPolicy(busy, reserve_after))
    every_event = simulate(busy, PlannerPolicy(busy, reserve_after, skip_idle=False))

    assert skipping.preemptions_max > 0
    assert skipping.first_starts == every_event.first_starts
    assert (skipping.completed, skipping.held, skipping.lost) == (every_event.completed, every_event.held,
                                                                  every_event.lost)


def test_bounds_count_only_what_can_complete_within_the_horizon():
    tight = trace(1, 100, job(1, 0, 1, 60), job(2, 0, 1, 30), job(3, 80, 1, 30))

    utilisation, completions = bounds(tight)

    assert utilisation == 1.0  # 60 + 30 + 20 offered in 100 GPU-seconds
    assert completions == 2  # job 3 cannot end before 110


def test_traces_are_the_same_for_the_same_seed():
    assert make_trace(200, seed=3) == make_trace(200, seed=3)
    assert make_trace(200, seed=3) != make_trace(200, seed=4)


def test_a_checkpointing_deployment_loses_only_the_run_since_its_latest_checkpoint():
    # Low priority runs 250 s on all 4 GPUs, then high priority preempts it for 100 s; with a checkpoint every
    # 100 s it keeps 200 s of its work and loses 50, without one it loses all 250.
    tiny = trace(4, 2_000, job(1, 0, 4, 1_000, LOW), job(2, 250, 4, 100, HIGH))
    saving = Habits(time_limit=(None, None, None), checkpoint_every=(None, 100, None))

    kept = simulate(tiny, PlannerPolicy(tiny, None), saving)
    lost = simulate(tiny, PlannerPolicy(tiny, None))

    assert kept.completed_at[1] == 350 + 800 and lost.completed_at[1] == 350 + 1_000
    # (lost share, completed, deployments) of those that checkpoint, then of the others.
    assert kept.populations[0] == (50 / (250 + 800), 1, 1)
    assert lost.lost == pytest.approx(4 * 250 / (4 * (250 + 1_000) + 4 * 100))


def test_habits_leave_the_trace_alone_and_no_limit_ends_a_run():
    sample = make_trace(500, seed=3, gpus=16, load=0.6)

    habits = make_habits(sample, seed=3, limit_share=0.7, checkpoint_share=0.5, checkpoint_minutes=30)

    assert make_trace(500, seed=3, gpus=16, load=0.6) == sample
    assert all(limit is None or limit >= job.duration for job, limit in zip(sample.jobs, habits.time_limit[1:]))
    assert {every for every in habits.checkpoint_every[1:]} == {None, 1_800}
    assert make_habits(sample, seed=3, checkpoint_share=0).checkpoint_every[1:] == (None,) * 500
