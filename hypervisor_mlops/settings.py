"""Settings, read from the environment or `.env` (see .env.example for every name and its default)."""
import os
import tempfile
from datetime import timedelta
from pathlib import Path

import dj_database_url
from decouple import Csv, config

BASE_DIR = Path(__file__).resolve().parent.parent

# --- Core -------------------------------------------------------------------------------------------------
DEBUG = config("DEBUG", default=False, cast=bool)
# Production must bring its own key; only a DEBUG run may fall back to a throwaway one.
SECRET_KEY = config("SECRET_KEY", default="insecure-debug-only-key" if DEBUG else None)
ALLOWED_HOSTS = config("ALLOWED_HOSTS", default="localhost,127.0.0.1,[::1]", cast=Csv())

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "django_filters",
    "drf_yasg",
    "corsheaders",
    "accounts",
    "organizations",
    "clusters",
    "deployments",
    "agents",
]

MIDDLEWARE = [
    # First, so every response (even one a later middleware refuses) carries the id and is counted.
    "hypervisor_mlops.observability.middleware.RequestIdMiddleware",
    "hypervisor_mlops.observability.middleware.MetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "hypervisor_mlops.urls"
WSGI_APPLICATION = "hypervisor_mlops.wsgi.application"
# Every route answers with and without the slash by itself; a redirect would drop a POST body.
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------------------------------
# Without DATABASE_URL the service runs on an embedded SQLite file, so it starts with no configuration.
DATABASE_URL = config("DATABASE_URL", default="") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}"
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=600, conn_health_checks=True)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Short OLTP queries: JIT compilation only ever cost time here (0.5 s on stale statistics).
    DATABASES["default"]["OPTIONS"] = {"options": "-c jit=off"}
elif DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several writers (the API's threads, the agent sweep, agents' reports): readers never block the writer
    # (WAL), a transaction takes the write lock when it begins rather than failing on upgrade, and a writer
    # waits its turn instead of answering "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache (throttle counters) ----------------------------------------------------------------------------
# Counters must be shared by every process: Redis when configured, else a database table, never memory.
REDIS_URL = config("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "cache"}}

# --- Auth -------------------------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=config("ACCESS_TOKEN_MINUTES", default=15, cast=int)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=config("REFRESH_TOKEN_DAYS", default=7, cast=int)),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": False,
    "AUTH_HEADER_TYPES": ("Bearer",),
}

# --- REST framework ---------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ("rest_framework_simplejwt.authentication.JWTAuthentication",),
    "DEFAULT_PERMISSION_CLASSES": ("rest_framework.permissions.IsAuthenticated",),
    "DEFAULT_RENDERER_CLASSES": ("rest_framework.renderers.JSONRenderer",),
    "DEFAULT_PARSER_CLASSES": ("hypervisor_mlops.api.parsers.StrictJSONParser",),
    "DEFAULT_FILTER_BACKENDS": ("hypervisor_mlops.api.queries.FilterBackend",),
    "DEFAULT_PAGINATION_CLASS": "hypervisor_mlops.api.queries.WholeNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_THROTTLE_CLASSES": (
        "hypervisor_mlops.api.throttling.AnonThrottle",
        "hypervisor_mlops.api.throttling.UserThrottle",
    ),
    "DEFAULT_THROTTLE_RATES": {
        "anon": config("THROTTLE_ANON_RATE", default="120/min"),
        "user": config("THROTTLE_USER_RATE", default="1200/min"),
        "auth": config("THROTTLE_AUTH_RATE", default="10/min"),
    },
    # With no trusted proxy in front, X-Forwarded-For is the client's own words: ignore it.
    "NUM_PROXIES": config("NUM_PROXIES", default=0, cast=int),
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}

SWAGGER_SETTINGS = {
    "USE_SESSION_AUTH": False,
    "SECURITY_DEFINITIONS": {
        "Bearer": {
            "type": "apiKey",
            "name": "Authorization",
            "in": "header",
            "description": "An access token from /api/v1/auth/login, as `Bearer <token>`.",
        }
    },
    "PERSIST_AUTH": True,
    "DEFAULT_AUTO_SCHEMA_CLASS": "hypervisor_mlops.api.openapi.ErrorsAutoSchema",
    "DEFAULT_GENERATOR_CLASS": "hypervisor_mlops.api.schema.IntegerIdsGenerator",
    "DEFAULT_FILTER_INSPECTORS": ["hypervisor_mlops.api.openapi.TypedFilterInspector",
                                  "drf_yasg.inspectors.CoreAPICompatInspector"],
}

CORS_ALLOWED_ORIGINS = config("CORS_ALLOWED_ORIGINS", default="", cast=Csv())

# --- Celery -----------------------------------------------------------------------------------------------
# Without a broker, tasks run in-process right after the transaction that queued them commits.
CELERY_BROKER_URL = config("CELERY_BROKER_URL", default="")
CELERY_TASK_ALWAYS_EAGER = config("CELERY_TASK_ALWAYS_EAGER", default=not CELERY_BROKER_URL, cast=bool)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 60
CELERY_TASK_SOFT_TIME_LIMIT = 50
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # A message held by a worker that died is handed out again after this long (acks_late).
    "visibility_timeout": 300,
    # Publishing gives up fast when the broker is down: the API answers at once and reconcile catches up.
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.2,
}

# Beat sweeps every cluster: repairs drifted counters and places work whose scheduling message was lost.
RECONCILE_INTERVAL_SECONDS = config("RECONCILE_INTERVAL_SECONDS", default=30, cast=float)
CELERY_BEAT_SCHEDULE = {
    "reconcile-clusters": {
        "task": "deployments.tasks.reconcile_clusters_task",
        "schedule": RECONCILE_INTERVAL_SECONDS,
        "options": {"expires": RECONCILE_INTERVAL_SECONDS},
    },
}

# --- Agents -----------------------------------------------------------------------------------------------
# An agent silent this long shows `offline`; this long, its cluster's running deployments are requeued.
AGENT_OFFLINE_AFTER_SECONDS = config("AGENT_OFFLINE_AFTER_SECONDS", default=30, cast=float)
AGENT_LOST_AFTER_SECONDS = config("AGENT_LOST_AFTER_SECONDS", default=300, cast=float)
# How often lost agents are looked for: requeueing happens at most this long after the bound.
AGENT_SWEEP_SECONDS = config("AGENT_SWEEP_SECONDS", default=5, cast=float)
# What the sync answer suggests agents wait between passes (an agent's own --interval wins).
AGENT_POLL_SECONDS = config("AGENT_POLL_SECONDS", default=0.25, cast=float)
CELERY_BEAT_SCHEDULE["requeue-lost-agents"] = {
    "task": "deployments.tasks.requeue_lost_agents_task",
    "schedule": AGENT_SWEEP_SECONDS,
    "options": {"expires": AGENT_SWEEP_SECONDS},
}

# --- Workload lifecycle -----------------------------------------------------------------------------------
# The n-th restart in place within an attempt waits min(BACKOFF x 2^(n-1), BACKOFF_MAX) after the exit; a
# container that ran RESET seconds or more restarts at once and starts the doubling afresh.
RESTART_BACKOFF_SECONDS = config("RESTART_BACKOFF_SECONDS", default=1, cast=float)
RESTART_BACKOFF_MAX_SECONDS = config("RESTART_BACKOFF_MAX_SECONDS", default=60, cast=float)
RESTART_RESET_SECONDS = config("RESTART_RESET_SECONDS", default=600, cast=float)
# How often running deployments are held to their time limits: a limit is enforced within about this long.
TIME_LIMIT_SWEEP_SECONDS = config("TIME_LIMIT_SWEEP_SECONDS", default=1, cast=float)
CELERY_BEAT_SCHEDULE["end-overdue-deployments"] = {
    "task": "deployments.deadlines.end_overdue_task",
    "schedule": TIME_LIMIT_SWEEP_SECONDS,
    "options": {"expires": TIME_LIMIT_SWEEP_SECONDS},
}
# Task modules beyond each app's tasks.py (which autodiscovery finds).
CELERY_IMPORTS = ["deployments.deadlines"]

# --- Streams (Server-Sent Events) -------------------------------------------------------------------------
# A comment goes out on an idle stream this often (proxies close silent connections; the contract says <= 15 s).
STREAM_HEARTBEAT_SECONDS = config("STREAM_HEARTBEAT_SECONDS", default=10.0, cast=float)
# Without Redis to carry wake-up hints between processes, streams read the database again this often.
STREAM_POLL_SECONDS = config("STREAM_POLL_SECONDS", default=0.5, cast=float)
# A stream is closed after this long (the client resumes with Last-Event-ID): at most once every 5 minutes.
STREAM_MAX_SECONDS = config("STREAM_MAX_SECONDS", default=300.0, cast=float)
# Threads per process that read for streams, each with its own connection: what all its streams share.
STREAM_READERS = config("STREAM_READERS", default=4, cast=int)
# Streams one process keeps open (503 beyond). Under threads each holds one: bin/run gives every worker this
# many threads more than it needs for requests.
STREAMS_PER_PROCESS = config("STREAMS_PER_PROCESS", default=100, cast=int)

# --- Metrics ----------------------------------------------------------------------------------------------
# /metrics answers only with this bearer token; unset (the default), it is 404.
METRICS_TOKEN = config("METRICS_TOKEN", default="")
# Where every process (gunicorn workers, Celery workers) writes its counters and histograms for the scrape
# to sum. prometheus_client reads the variable when first imported, so it is set here, before any import.
PROMETHEUS_MULTIPROC_DIR = config(
    "PROMETHEUS_MULTIPROC_DIR", default=os.path.join(tempfile.gettempdir(), "hypervisor-metrics"))
os.environ["PROMETHEUS_MULTIPROC_DIR"] = PROMETHEUS_MULTIPROC_DIR
os.makedirs(PROMETHEUS_MULTIPROC_DIR, exist_ok=True)
# What each app reads from the database for /metrics at scrape time; the ground floor imports none of them.
METRICS_COLLECTORS = [
    "clusters.metrics.ClusterCollector",
    "deployments.metrics.DeploymentCollector",
    "agents.metrics.AgentCollector",
]

# --- Static files, i18n -----------------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Logging ----------------------------------------------------------------------------------------------
# LOG_FORMAT=json: one JSON object per line (time, level, logger, message, request_id, user, cluster,
# deployment where known). Every line carries the id of the request (or of the request that enqueued the task).
LOG_FORMAT = config("LOG_FORMAT", default="text")
if LOG_FORMAT not in ("text", "json"):
    raise ValueError(f"LOG_FORMAT must be 'text' or 'json', not {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "hypervisor_mlops.observability.logging.RequestIdFilter"}},
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {"()": "hypervisor_mlops.observability.logging.JsonFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["request_id"]},
    },
    "root": {"handlers": ["console"], "level": config("LOG_LEVEL", default="INFO")},
}

# --- Tests ------------------------------------------------------------------------------------------------
TEST_RUNNER = "tests.runner.PytestRunner"
