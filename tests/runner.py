"""`manage.py test` runs the same pytest suite as bin/test, on PostgreSQL and Redis."""
import subprocess
import sys


class PytestRunner:
    def __init__(self, verbosity: int = 1, failfast: bool = False, keepdb: bool = False, **kwargs) -> None:
        self.verbosity = verbosity
        self.failfast = failfast
        self.keepdb = keepdb

    def run_tests(self, test_labels: list[str], **kwargs) -> int:
        args = [sys.executable, "-m", "pytest", *test_labels]
        if self.verbosity == 0:
            args.append("--quiet")
        elif self.verbosity > 1:
            args.append("--verbose")
        if self.failfast:
            args.append("--exitfirst")
        if self.keepdb:
            args.append("--reuse-db")
        # A fresh interpreter, so the suite's database and broker settings apply, not this process's.
        return subprocess.call(args)
