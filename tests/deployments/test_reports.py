"""Pure: what an agent's report means for open run attempts, and how output is cleaned, bounded and read."""
from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from deployments.output import LOG_KEEP_CHARS, LOG_TRIM_AT_CHARS, bounded, clean_output, last_lines
from deployments.reports import (
    Change,
    OpenAttempt,
    SeenContainer,
    ServiceUpdate,
    StartFailure,
    runtime_transitions,
    service_updates,
)


def attempt(deployment=1, state="starting", container="", number=1) -> OpenAttempt:
    return OpenAttempt(id=deployment * 10 + number, deployment=deployment, number=number, state=state,
                       container=container)


def seen(deployment=1, state="running", exit_code=None, number=1) -> SeenContainer:
    return SeenContainer(deployment, number, f"c{deployment}", state, exit_code)


def changes(attempts, report, failures=()) -> list[tuple[Change, int]]:
    return [(t.change, t.attempt.deployment) for t in runtime_transitions(attempts, report, failures)]


def test_a_container_seen_running_starts_its_attempt_once():
    assert changes([attempt()], [seen()]) == [(Change.STARTED, 1)]
    assert changes([attempt(state="running", container="c1")], [seen()]) == []


def test_an_exit_finishes_the_current_attempt_with_its_code():
    [transition] = runtime_transitions([attempt(state="running")], [seen(state="exited", exit_code=3)], [])
    assert (transition.change, transition.exit_code, transition.container) == (Change.EXITED, 3, "c1")


def test_a_created_container_is_recorded_but_not_started():
    assert changes([attempt()], [seen(state="created")]) == [(Change.CREATED, 1)]
    assert changes([attempt(container="c1")], [seen(state="created")]) == []


def test_a_missing_container_means_nothing_yet_gone_or_failed_depending_on_the_attempt():
    assert changes([attempt()], []) == []
    assert changes([attempt(state="running", container="c1")], []) == [(Change.VANISHED, 1)]
    assert changes([attempt()], [], [StartFailure(1, 1, "no such image")]) == [(Change.START_FAILED, 1)]
    assert changes([attempt(state="stopping", container="c1")], []) == [(Change.STOPPED, 1)]


def test_a_stopping_attempt_is_stopped_once_its_container_exited_and_not_while_it_runs():
    assert changes([attempt(state="stopping")], [seen()]) == []
    [transition] = runtime_transitions([attempt(state="stopping")], [seen(state="exited", exit_code=143)], [])
    assert (transition.change, transition.exit_code) == (Change.STOPPED, 143)


def test_reports_of_other_attempts_are_ignored():
    assert changes([attempt(number=2)], [seen(number=1, state="exited", exit_code=0)]) == []


RESULT = {Change.STARTED: "running", Change.CREATED: None, Change.EXITED: "exited", Change.START_FAILED: "stopped",
          Change.VANISHED: "stopped", Change.STOPPED: "stopped"}
OPEN = ("starting", "running", "stopping")

reports = st.lists(st.builds(SeenContainer, st.integers(1, 5), st.integers(1, 2), st.just("c"),
                             st.sampled_from(["created", "running", "exited"]), st.integers(0, 3)), max_size=6)
open_attempts = st.lists(st.builds(OpenAttempt, st.integers(1, 100), st.integers(1, 5), st.integers(1, 2),
                                   st.sampled_from(OPEN), st.sampled_from(["", "c"])), max_size=6,
                         unique_by=lambda a: (a.deployment, a.number))
failures = st.lists(st.builds(StartFailure, st.integers(1, 5), st.integers(1, 2), st.just("boom")), max_size=3)


@given(open_attempts, reports, failures)
def test_the_same_report_twice_changes_nothing_the_second_time(attempts, report, failed):
    after = []
    for transition in runtime_transitions(attempts, report, failed):
        state = RESULT[transition.change] or transition.attempt.state
        if state in OPEN:
            after.append(replace(transition.attempt, state=state, container=transition.container))
    touched = {t.attempt.id for t in runtime_transitions(attempts, report, failed)}
    after += [a for a in attempts if a.id not in touched]
    assert runtime_transitions(after, report, failed) == []


def test_output_is_cleaned_of_bad_bytes_and_nul():
    assert clean_output(b"a\xffb\x00c\xe2\x82") == "a\ufffdbc\ufffd"


def test_bounding_keeps_at_least_the_last_mebibyte_from_a_line_start():
    text = "".join(f"{i:07d}\n" for i in range(LOG_TRIM_AT_CHARS // 8 + 10))
    kept, dropped = bounded(text)
    assert dropped and len(kept) >= LOG_KEEP_CHARS and text.endswith(kept) and text[-len(kept) - 1] == "\n"
    assert bounded("short\n") == ("short\n", False)


def test_one_huge_line_is_cut_where_it_must_be():
    kept, dropped = bounded("x" * (LOG_TRIM_AT_CHARS + 1))
    assert dropped and len(kept) == LOG_KEEP_CHARS


def test_last_lines_oldest_first_and_whether_more_exist():
    assert last_lines("a\nb\nc\n", 2) == (["b", "c"], True)
    assert last_lines("a\nb\npartial", 5) == (["a", "b", "partial"], False)
    assert last_lines("a\n", 0) == ([], True)


def test_a_reports_endings_come_before_its_starts_whatever_the_order_of_the_attempts():
    preemptor = attempt(deployment=2)
    victim = attempt(deployment=1, state="stopping", container="c1")
    exited = attempt(deployment=3, state="running", container="c3")
    report = [seen(deployment=2), seen(deployment=3, state="exited", exit_code=0)]
    assert changes([preemptor, exited, victim], report) == [
        (Change.EXITED, 3), (Change.STOPPED, 1), (Change.STARTED, 2)]


# --- Services: endpoints and readiness -----------------------------------------------------------------------

ENDPOINT = {"port": 8080, "host": "gpu-7", "host_port": 40001}


def serving(ports=((8080, 40001),), ready=None, state="running", health="") -> SeenContainer:
    return SeenContainer(1, 1, "c1", state, None, ports, ready, health)


def test_a_running_containers_bound_ports_become_its_endpoints_once():
    running = attempt(state="running", container="c1")
    assert service_updates([running], [serving()], "gpu-7") == [ServiceUpdate(running, (ENDPOINT,))]
    recorded = replace(running, endpoints=(ENDPOINT,))
    assert service_updates([recorded], [serving()], "gpu-7") == []
    # Ports unbound again (or never listed, moby#42860) are what is true now: none.
    assert service_updates([recorded], [serving(ports=())], "gpu-7") == [ServiceUpdate(recorded, ())]
    assert service_updates([recorded], [serving()], "another-name")[0].endpoints[0]["host"] == "another-name"


def test_a_verdict_changes_readiness_and_no_verdict_keeps_it():
    ready = attempt(state="running", container="c1")
    ready = replace(ready, endpoints=(ENDPOINT,), ready=True)
    assert service_updates([ready], [serving(ready=None)], "gpu-7") == []
    assert service_updates([ready], [serving(ready=True)], "gpu-7") == []
    assert service_updates([ready], [serving(ready=False, health="HTTP 503 from /")], "gpu-7") == [
        ServiceUpdate(ready, None, False, "HTTP 503 from /")]


def test_only_current_runs_seen_running_are_updated():
    stopping = attempt(state="stopping", container="c1")
    assert service_updates([stopping], [serving(ready=True)], "gpu-7") == []
    assert service_updates([attempt(state="running")], [serving(state="exited", ready=True)], "gpu-7") == []
    # A container reported running for the first time is published and judged in the same report.
    starting = attempt()
    assert service_updates([starting], [serving(ready=True)], "gpu-7") == [ServiceUpdate(starting, (ENDPOINT,), True)]
