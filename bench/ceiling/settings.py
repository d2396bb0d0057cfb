"""Settings of the ceiling app: the service's models and JWT settings, nothing else on the request path."""
import os
from datetime import timedelta

import dj_database_url

SECRET_KEY = os.environ["SECRET_KEY"]  # the service's, so one access token works on both
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "bench.ceiling.urls"
WSGI_APPLICATION = "bench.ceiling.wsgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The service's apps only for their models (the tables it reads and writes); no middleware at all.
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "rest_framework",
    "accounts",
    "organizations",
    "clusters",
    "agents",
    "deployments",
]
MIDDLEWARE: list[str] = []
AUTH_USER_MODEL = "accounts.User"

DATABASES = {"default": dj_database_url.parse(os.environ["DATABASE_URL"], conn_max_age=600,
                                              conn_health_checks=True)}
DATABASES["default"]["OPTIONS"] = {"options": "-c jit=off"}
CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": os.environ["REDIS_URL"]}}
CELERY_BROKER_URL = os.environ["CELERY_BROKER_URL"]

SIMPLE_JWT = {"ACCESS_TOKEN_LIFETIME": timedelta(minutes=15), "AUTH_HEADER_TYPES": ("Bearer",)}
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ("rest_framework_simplejwt.authentication.JWTAuthentication",),
    "DEFAULT_PERMISSION_CLASSES": ("rest_framework.permissions.IsAuthenticated",),
    "DEFAULT_RENDERER_CLASSES": ("rest_framework.renderers.JSONRenderer",),
    "DEFAULT_PARSER_CLASSES": ("rest_framework.parsers.JSONParser",),
    "DEFAULT_THROTTLE_CLASSES": (),
    "UNAUTHENTICATED_USER": None,
}
LOGGING_CONFIG = None
