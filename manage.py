#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hypervisor_mlops.settings")
    if sys.argv[1:2] == ["test"]:
        # `test` only launches pytest in a fresh process (tests/runner.py) with the suite's own settings;
        # this launcher process needs no real secret to get there.
        os.environ.setdefault("SECRET_KEY", "test-launcher-only")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
