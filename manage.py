#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hypervisor_mlops.settings")
    if sys.argv[1:2] in (["test"], ["makemigrations"]):
        # These sign nothing: `test` only launches pytest in a fresh process with the suite's own settings
        # (tests/runner.py), and migrations are written from the models alone. Serving still needs a real key.
        os.environ.setdefault("SECRET_KEY", "signs-nothing")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
