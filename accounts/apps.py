"""App config for accounts."""
from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
