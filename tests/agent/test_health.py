"""Pure: health checks as the agent reads them, when each probe is due, and what the probes add up to."""
from cluster_agent.health import EXEC, HTTP, TCP, HealthCheck, Verdict, next_probe_at, observe, parse_check

CHECK = HealthCheck(HTTP, port=8080, period=5, timeout=2, failure_threshold=3, initial_delay=10)


def test_the_servers_checks_are_read_with_their_defaults():
    assert parse_check(None) is None
    assert parse_check({"http": {"port": 80}}) == HealthCheck(HTTP, port=80, path="/")
    assert parse_check({"tcp": {"port": 5432}, "period_seconds": 1, "timeout_seconds": 3, "failure_threshold": 1,
                        "initial_delay_seconds": 7}) == HealthCheck(TCP, port=5432, period=1, timeout=3,
                                                                    failure_threshold=1, initial_delay=7)
    assert parse_check({"exec": ["test", "-f", "/ok"]}) == HealthCheck(EXEC, argv=("test", "-f", "/ok"))


def test_the_first_probe_waits_out_the_initial_delay_then_one_starts_every_period():
    assert next_probe_at(CHECK, began_at=100, last_probe_at=None) == 110
    assert next_probe_at(CHECK, began_at=100, last_probe_at=110) == 115
    # A probe that outlasted its period (it began at 110, ended after 116) is followed at once: the due time
    # is already past, and the checker runs one probe at a time.
    assert next_probe_at(CHECK, began_at=100, last_probe_at=110) < 116


def test_no_verdict_until_a_success_or_enough_failures_in_a_row():
    verdict = Verdict()
    for _ in range(2):
        verdict = observe(verdict, CHECK, False, "connection refused")
        assert verdict.ready is None
    verdict = observe(verdict, CHECK, False, "connection refused")
    assert verdict == Verdict(False, 3, "connection refused")


def test_one_success_makes_it_ready_and_threshold_failures_in_a_row_make_it_not_ready():
    verdict = observe(Verdict(), CHECK, True, "HTTP 200 from /")
    assert verdict == Verdict(True, 0, "HTTP 200 from /")
    verdict = observe(observe(verdict, CHECK, False, "HTTP 503 from /"), CHECK, False, "HTTP 503 from /")
    assert verdict.ready is True  # two failures of three
    verdict = observe(verdict, CHECK, True, "HTTP 200 from /")
    assert verdict.failures == 0  # a success breaks the run of failures
    for _ in range(3):
        verdict = observe(verdict, CHECK, False, "HTTP 503 from /")
    assert verdict == Verdict(False, 3, "HTTP 503 from /")
    assert observe(verdict, CHECK, False, "HTTP 503 from /").ready is False


def test_a_threshold_of_one_turns_on_the_first_failure():
    once = HealthCheck(EXEC, argv=("true",), failure_threshold=1)
    assert observe(Verdict(True), once, False, "true exited with code 1").ready is False
