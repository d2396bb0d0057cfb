"""Pure: whether an exit restarts a deployment in place, and how long its backoff waits.

The n-th restart within one attempt waits min(base x 2^(n-1), cap) after the exit; a container that ran for
`reset` seconds or more restarts at once, and the doubling starts afresh after it.
"""
from __future__ import annotations

from dataclasses import dataclass

NEVER, ON_FAILURE, ALWAYS = "never", "on_failure", "always"


def restarts_after(policy: str, exit_code: int | None) -> bool:
    """Whether an exit with this code restarts the container rather than ending the deployment."""
    return policy == ALWAYS or (policy == ON_FAILURE and exit_code != 0)


@dataclass(frozen=True, slots=True)
class Backoff:
    base: float
    cap: float
    reset: float

    def step_after(self, step: int, ran_seconds: float | None) -> int:
        """The step of the restart that follows a run of `step` that ran `ran_seconds` (None: never ran)."""
        return 0 if ran_seconds is not None and ran_seconds >= self.reset else step + 1

    def delay(self, step: int) -> float:
        """Seconds between the exit and the restart of this step (step 0: none)."""
        return 0.0 if step == 0 else min(self.base * 2 ** (step - 1), self.cap)


def exhausted(restart_count: int, max_restarts: int | None) -> bool:
    """Whether one more restart would exceed `max_restarts` (None: no cap)."""
    return max_restarts is not None and restart_count >= max_restarts
