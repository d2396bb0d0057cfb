"""The agent's decisions, without Docker: free GPU indices, what may start now, what is stale, log cuts."""

from hypothesis import given
from hypothesis import strategies as st

from cluster_agent.decisions import (
    LOG_UNBROKEN_BYTES,
    Desired,
    Observed,
    free_gpus,
    log_cut,
    plan_pass,
    reported_state,
    stale,
    volumes_to_remove,
)


def running(deployment: int, attempt: int = 1, gpus: tuple[int, ...] = (), state: str = "running") -> Observed:
    return Observed(f"c-{deployment}-{attempt}", deployment, attempt, state, None, gpus)


def want(deployment: int, attempt: int = 1, gpu: int = 0) -> Desired:
    return Desired(deployment, attempt, image="localhost/busybox:test", gpu=gpu)


def test_free_gpus_are_lowest_first_and_exclude_live_containers():
    observed = [running(1, gpus=(0, 2)), running(2, gpus=(3,), state="paused")]
    assert free_gpus([4, 3, 2, 1, 0], observed) == [1, 4]


def test_free_gpus_count_only_live_containers():
    observed = [running(1, gpus=(0,), state="exited"), running(2, gpus=(1,), state="created")]
    assert free_gpus([0, 1], observed) == [0, 1]


def test_free_gpus_exclude_reserved_indices():
    assert free_gpus([0, 1, 2], [], reserved=[1]) == [0, 2]


def test_stale_containers_are_those_of_attempts_not_desired():
    observed = [running(1, 1), running(1, 2), running(2, 1)]
    assert stale([want(1, 2)], observed) == [running(1, 1), running(2, 1)]


def test_desired_without_container_starts_with_lowest_free_gpus():
    actions = plan_pass([want(1, gpu=2), want(2, gpu=1)], [running(2, gpus=(0,))], [0, 1, 2, 3], set(), {})
    assert actions.start == ((want(1, gpu=2), (1, 2)),)


def test_live_stale_container_is_stopped_and_blocks_every_start():
    victim = running(9, gpus=(0,))
    actions = plan_pass([want(1), want(2, gpu=1)], [victim], [0, 1], set(), {})
    assert actions.stop == (victim,)
    assert actions.start == ()


def test_while_a_victim_stops_the_preemptor_is_created_with_the_indices_it_will_free():
    victim, other = running(9, gpus=(0,)), running(3, gpus=(1,))
    actions = plan_pass([want(1, gpu=1), want(3, gpu=1), want(2, gpu=1)], [victim, other], [0, 1], set(), {})
    assert actions.stop == (victim,) and actions.start == () and actions.resume == ()
    # Index 1 stays with the running deployment 3; only one index is left for deployments 1 and 2.
    assert actions.prepare == ((want(1, gpu=1), (0,)),)


def test_a_created_preemptor_is_started_once_its_victim_is_gone():
    created = running(1, gpus=(0,), state="created")
    assert plan_pass([want(1, gpu=1)], [created], [0], set(), {}).resume == (created,)


def test_nothing_is_created_twice_or_beside_an_old_attempt():
    victim, old = running(9), running(1, attempt=1)
    actions = plan_pass([want(1, attempt=2), want(5)], [victim, old], [], set(), {(5, 1): ()})
    assert actions.prepare == ()


def test_start_proceeds_once_victims_have_exited():
    victim = running(9, gpus=(0,), state="exited")
    actions = plan_pass([want(1, gpu=1)], [victim], [0], set(), {})
    assert actions.start == ((want(1, gpu=1), (0,)),)
    assert actions.remove == ()  # not yet reported exited: its output may still be on its way


def test_exited_stale_container_is_removed_once_reported_exited():
    victim = running(9, state="exited")
    actions = plan_pass([], [victim], [], set(), {}, reported_exited={victim.container_id})
    assert actions.remove == (victim,)


def test_created_stale_container_is_removed():
    leftover = running(9, state="created")
    assert plan_pass([], [leftover], [], set(), {}).remove == (leftover,)


def test_another_attempt_of_the_same_deployment_blocks_the_start():
    old = running(1, 1, state="exited")
    actions = plan_pass([want(1, 2)], [old], [], set(), {})
    assert actions.start == ()
    assert plan_pass([want(1, 2)], [], [], set(), {}).start == ((want(1, 2), ()),)


def test_the_next_run_starts_in_the_pass_that_removes_the_exited_one():
    old = running(1, 1, state="exited")
    actions = plan_pass([want(1, 2)], [old], [], set(), {}, reported_exited={old.container_id})
    assert actions.remove == (old,) and actions.start == ((want(1, 2), ()),)


def test_missing_gpus_block_the_start():
    actions = plan_pass([want(1, gpu=2), want(2, gpu=1)], [running(2, gpus=(0,))], [0, 1], set(), {})
    assert actions.start == ()


def test_failed_start_is_not_retried():
    assert plan_pass([want(1)], [], [], {(1, 1)}, {}).start == ()
    assert plan_pass([want(1, 2)], [], [], {(1, 1)}, {}).start == ((want(1, 2), ()),)


def test_start_in_flight_is_not_repeated_and_keeps_its_gpus():
    actions = plan_pass([want(1, gpu=1), want(2, gpu=1)], [], [0, 1], set(), {(1, 1): (0,)})
    assert actions.start == ((want(2, gpu=1), (1,)),)


def test_created_desired_container_is_started_with_its_gpus():
    created = running(1, gpus=(1,), state="created")
    actions = plan_pass([want(1, gpu=1), want(2, gpu=1)], [created], [0, 1], set(), {})
    assert actions.resume == (created,)
    assert actions.start == ((want(2, gpu=1), (0,)),)


def test_created_container_whose_gpus_are_taken_is_removed():
    created = running(1, gpus=(0,), state="created")
    actions = plan_pass([want(1, gpu=1), want(2, gpu=1)], [created, running(2, gpus=(0,))], [0, 1], set(), {})
    assert actions.resume == ()
    assert actions.remove == (created,)


def test_a_start_in_flight_the_server_no_longer_wants_blocks_new_starts():
    # Preempted while its container was being started: the listing cannot show it live yet, but it may be.
    actions = plan_pass([want(2)], [running(1, state="created")], [], set(), {(1, 1): ()})
    assert actions.start == () and actions.remove == ()
    assert actions.prepare == ((want(2), ()),)
    assert plan_pass([want(2)], [], [], set(), {(1, 1): ()}).start == ()


def test_a_creation_in_flight_the_server_no_longer_wants_blocks_nothing():
    # Its container holds nothing until started, however long the image takes to pull.
    actions = plan_pass([want(2)], [], [], set(), {(1, 1): ()}, creating={(1, 1)})
    assert actions.start == ((want(2), ()),)


def test_created_container_of_a_start_in_flight_is_left_alone():
    created = running(1, state="created")
    actions = plan_pass([want(1)], [created], [], set(), {(1, 1): ()})
    assert actions == plan_pass([], [], [], set(), {})


def test_exited_is_reported_only_once_the_log_is_drained():
    assert reported_state("exited", log_drained=False) == "running"
    assert reported_state("exited", log_drained=True) == "exited"
    assert reported_state("dead", log_drained=True) == "exited"
    assert reported_state("created", log_drained=False) == "created"
    assert reported_state("paused", log_drained=True) == "running"


def test_log_cut_ships_whole_lines_until_the_output_ends():
    assert log_cut(b"one\ntwo\nthr", done=False, limit=100) == 8
    assert log_cut(b"no newline", done=False, limit=100) == 0
    assert log_cut(b"one\ntwo\nthr", done=True, limit=100) == 11
    assert log_cut(b"one\ntwo\nthr", done=False, limit=6) == 4


def test_log_cut_ships_an_overlong_line_in_pieces():
    line = b"x" * (LOG_UNBROKEN_BYTES + 1)
    assert log_cut(line, done=False, limit=1000) == 1000
    assert log_cut(line, done=False, limit=10**9) == len(line)


states = st.sampled_from(["created", "running", "paused", "restarting", "stopping", "exited", "dead", "stopped"])


@st.composite
def scenarios(draw):
    all_gpus = draw(st.lists(st.integers(0, 7), unique=True, max_size=8))
    observed, used = [], set()
    for deployment in draw(st.lists(st.integers(1, 12), unique=True, max_size=8)):
        state = draw(states)
        # Live containers never share (the agent's invariant); finished ones may hold anything.
        pool = [index for index in all_gpus if index not in used] if Observed('c', 1, 1, state).live else all_gpus
        gpus = tuple(draw(st.lists(st.sampled_from(pool), unique=True, max_size=2))) if pool else ()
        if Observed('c', 1, 1, state).live:
            used |= set(gpus)
        observed.append(Observed(f"c{deployment}", deployment, draw(st.integers(1, 3)), state, None, gpus))
    desired = [want(d, draw(st.integers(1, 3)), draw(st.integers(0, 3)))
               for d in draw(st.lists(st.integers(1, 12), unique=True, max_size=8))]
    failed = set(draw(st.lists(st.sampled_from([w.key for w in desired]), max_size=3))) if desired else set()
    return desired, observed, all_gpus, failed


@given(scenarios())
def test_gpus_given_in_a_pass_are_never_shared_with_live_containers_or_each_other(scenario):
    desired, observed, all_gpus, failed = scenario
    actions = plan_pass(desired, observed, all_gpus, failed, {})
    held = [index for container in observed if container.live for index in container.gpus]
    held += [index for _, gpus in actions.start for index in gpus]
    held += [index for container in actions.resume for index in container.gpus]
    assert len(held) == len(set(held))
    assert set(held) - {i for c in observed if c.live for i in c.gpus} <= set(all_gpus)
    for started, gpus in actions.start:
        assert len(gpus) == started.gpu


@given(scenarios())
def test_nothing_starts_while_a_live_stale_container_exists(scenario):
    desired, observed, all_gpus, failed = scenario
    actions = plan_pass(desired, observed, all_gpus, failed, {})
    if any(container.live for container in stale(desired, observed)):
        assert actions.start == () and actions.resume == ()
        assert set(actions.stop) == {c for c in stale(desired, observed) if c.live}
        # What is created meanwhile holds indices that no container keeps after the victims are gone.
        holding = [c for c in observed if c not in actions.stop and c not in actions.remove
                   and (c.live or c.state in ("created", "configured"))]
        kept = {i for c in holding for i in c.gpus}
        prepared = [i for _, gpus in actions.prepare for i in gpus]
        assert len(prepared) == len(set(prepared)) and not set(prepared) & kept


@given(scenarios())
def test_at_most_one_container_per_deployment_and_no_failed_start(scenario):
    desired, observed, all_gpus, failed = scenario
    actions = plan_pass(desired, observed, all_gpus, failed, {})
    # Removals run before the starts of a pass: a deployment starts only once every container of it is gone.
    removed = {c.container_id for c in actions.remove}
    existing = {container.deployment for container in observed if container.container_id not in removed}
    for started, _ in actions.start:
        assert started.deployment not in existing
        assert started.key not in failed
    assert len({started.deployment for started, _ in actions.start}) == len(actions.start)
    assert not {c.container_id for c in actions.remove} & {c.container_id for c in actions.resume}


def test_the_volumes_of_finished_deployments_go_once_no_container_of_theirs_is_left():
    volumes = {1: "hv-x-deployment-1", 2: "hv-x-deployment-2", 3: "hv-x-deployment-3"}
    observed = [running(2), running(3, state="exited")]
    assert volumes_to_remove([1, 2, 3, 4], volumes, observed) == ["hv-x-deployment-1"]
    assert volumes_to_remove([], volumes, []) == []
