"""create_superuser makes an admin from flags alone."""
import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from accounts.models import User
from tests.factories import UserFactory
from tests.workers import database_url_for_subprocesses

pytestmark = pytest.mark.django_db


def test_create_superuser_creates_a_superuser_that_can_log_in(api_client):
    call_command("create_superuser", username="root", email="root@example.com", password="s3cret-Passw0rd!")
    user = User.objects.get(username="root")
    assert user.is_superuser and user.is_staff
    response = api_client.post("/api/v1/auth/login", {"username": "root", "password": "s3cret-Passw0rd!"})
    assert response.status_code == 200


def test_create_superuser_with_existing_username_is_a_clear_error():
    UserFactory(username="root")
    with pytest.raises(CommandError, match="already exists"):
        call_command("create_superuser", username="root", email="other@example.com", password="s3cret-Passw0rd!")
    assert User.objects.filter(username="root").count() == 1


@pytest.mark.django_db(transaction=True)
def test_create_superuser_via_manage_py_exits_non_zero_on_duplicate():
    # The exit status is what scripts see: run the command as they do, in a process of its own.
    env = {**os.environ, "DATABASE_URL": database_url_for_subprocesses()}
    args = [sys.executable, "manage.py", "create_superuser", "--username", "dup", "--email", "dup@example.com",
            "--password", "s3cret-Passw0rd!"]
    UserFactory(username="dup")
    result = subprocess.run(args, env=env, capture_output=True, text=True, cwd=settings.BASE_DIR)
    assert result.returncode != 0
    assert "already exists" in result.stderr
