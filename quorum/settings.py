"""Quorum settings: one file, every knob from an environment variable with a working default.

The defaults run the demo on one machine: SQLite under var/, Redis on 127.0.0.1:6379 and an MLflow
server on 127.0.0.1:5000. Production sets DATABASE_URL, REDIS_URL, MLFLOW_TRACKING_URI and
SECRET_KEY (see README.md).
"""

import os
from pathlib import Path

import dj_database_url
import plotly

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("QUORUM_VAR_DIR", BASE_DIR / "var"))
# The default SQLite file and collected static files live here; SQLite will not create the
# directory itself, and a fresh clone has none.
(VAR_DIR / "static").mkdir(parents=True, exist_ok=True)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)
SECRET_KEY = os.environ.get("SECRET_KEY", "quorum-insecure-development-key-set-SECRET_KEY")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_rq",
    "ninja",  # serves the API docs' Swagger UI from its own static files, not a CDN
    "registry",
    "reviews",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "quorum.urls"
WSGI_APPLICATION = "quorum.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
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

DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{VAR_DIR / 'quorum.sqlite3'}",
        conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "60")),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web process, the worker and the scheduler share one file: wait for locks, don't fail.
    # IMMEDIATE: a transaction that reads, then writes, waits for the lock instead of failing at
    # once with "database is locked"; WAL: readers and the writer do not block each other.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        timeout=20, transaction_mode="IMMEDIATE", init_command="PRAGMA journal_mode=WAL;"
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [
    BASE_DIR / "static",
    # plotly.js as the plotly package ships it: served by us, never from a CDN.
    ("plotly", Path(plotly.__file__).parent / "package_data"),
]
# Serve straight from the finders unless collectstatic was run for production.
WHITENOISE_USE_FINDERS = env_bool("WHITENOISE_USE_FINDERS", True)

# --- Redis and RQ -------------------------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
RQ_QUEUES = {
    name: {"URL": REDIS_URL, "DEFAULT_TIMEOUT": 600}
    for name in ("default", "transitions", "sync", "notifications")
}
# Enqueue at once. Code that must wait for a commit says so with transaction.on_commit, where it
# can also survive Redis being down (the reconciler re-enqueues what was missed).
RQ = {"COMMIT_MODE": "auto"}

# --- MLflow -------------------------------------------------------------------------------
MLFLOW_TRACKING_URI = os.environ.get("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
# Where reviewers open runs in the MLflow UI; the tracking server serves it by default.
MLFLOW_UI_URL = os.environ.get("MLFLOW_UI_URL", MLFLOW_TRACKING_URI).rstrip("/")
# The MLflow client retries for minutes by default; an outage must fail in seconds instead.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
MLFLOW_WEBHOOK_SECRET = os.environ.get("MLFLOW_WEBHOOK_SECRET", "")
# Webhook deliveries older than this are refused as replays.
MLFLOW_WEBHOOK_MAX_AGE_SECONDS = int(os.environ.get("MLFLOW_WEBHOOK_MAX_AGE_SECONDS", "300"))

# --- Quorum -------------------------------------------------------------------------------
QUORUM_BASE_URL = os.environ.get("QUORUM_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
QUORUM_SYNC_INTERVAL = int(os.environ.get("QUORUM_SYNC_INTERVAL", "60"))
QUORUM_FULL_SYNC_CRON = os.environ.get("QUORUM_FULL_SYNC_CRON", "0 3 * * *")
# Shown first, in this order, wherever a page has room for only a few metrics.
QUORUM_MAIN_METRICS = env_list(
    "QUORUM_MAIN_METRICS", "accuracy,f1,precision,recall,roc_auc,log_loss"
)
# A metric whose name contains one of these is better when lower.
QUORUM_LOWER_IS_BETTER = env_list(
    "QUORUM_LOWER_IS_BETTER", "loss,error,rmse,mse,mae,mape,perplexity,latency,duration"
)
# Explicit directions win over the name rule: "metric:higher,other_metric:lower".
QUORUM_METRIC_DIRECTIONS = {
    key.strip(): value.strip()
    for key, _, value in (item.partition(":") for item in env_list("QUORUM_METRIC_DIRECTIONS", ""))
}

# Seconds between attempts of a failed MLflow transition; one attempt more than listed.
QUORUM_TRANSITION_RETRY_INTERVALS = [
    int(x) for x in env_list("QUORUM_TRANSITION_RETRY_INTERVALS", "5,15,30")
]
QUORUM_TRANSITION_TIMEOUT = int(os.environ.get("QUORUM_TRANSITION_TIMEOUT", "300"))
QUORUM_RECONCILE_INTERVAL = int(os.environ.get("QUORUM_RECONCILE_INTERVAL", "60"))

EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "registry": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
        "reviews": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    },
}
