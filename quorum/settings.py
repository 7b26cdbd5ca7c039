"""Quorum settings: one file, every knob from an environment variable with a working default.

The defaults run the demo on one machine: SQLite under var/, Redis on 127.0.0.1:6379 and an MLflow
server on 127.0.0.1:5000. Production sets DATABASE_URL, REDIS_URL, MLFLOW_TRACKING_URI and
SECRET_KEY (see docs/configuration.md and docs/deploy.md).
"""

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
import plotly
from django.core.exceptions import ImproperlyConfigured

from quorum.csp import content_security_policy
from quorum.env import env_bool, env_choice, env_list, env_networks, env_secret
from quorum.log_settings import logging_settings
from quorum.mail_settings import mail_settings

BASE_DIR = Path(__file__).resolve().parent.parent
# A source checkout (manage.py beside the packages) keeps its state in its own var/. An installed
# Quorum must not write into site-packages: its state goes under the working directory instead.
PROJECT_DIR = BASE_DIR if (BASE_DIR / "manage.py").is_file() else Path.cwd()
VAR_DIR = Path(os.environ.get("QUORUM_VAR_DIR") or PROJECT_DIR / "var")
# The default SQLite file and collected static files live here; SQLite will not create the
# directory itself, and a fresh clone has none.
(VAR_DIR / "static").mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DEBUG", False)
# The development key lets the demo and the tests run without one; `manage.py check --deploy`,
# which the release step runs, fails while it is in use (quorum/checks.py).
DEVELOPMENT_SECRET_KEY = "quorum-insecure-development-key-set-SECRET_KEY"  # noqa: S105
SECRET_KEY = os.environ.get("SECRET_KEY") or DEVELOPMENT_SECRET_KEY
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
# Origins, scheme included, whose form posts are accepted although they differ from the Host the
# request arrived with (a proxy that rewrites Host): "https://quorum.example.com".
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

# --- Behind TLS (docs/deploy.md) ----------------------------------------------------------
# QUORUM_HTTPS=1 when users reach Quorum over HTTPS: plain HTTP is redirected, cookies are sent
# over HTTPS only, and browsers are told (HSTS) to use nothing else for SECURE_HSTS_SECONDS.
QUORUM_HTTPS = env_bool("QUORUM_HTTPS", False)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", QUORUM_HTTPS)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = QUORUM_HTTPS
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", 31536000 if QUORUM_HTTPS else 0))
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
if not SECURE_HSTS_PRELOAD:
    # Preloading is the apex domain owner's decision (hstspreload.org), not a dashboard's.
    SILENCED_SYSTEM_CHECKS = ["security.W021"]
# Behind a proxy that terminates TLS: the header it sets and the value meaning HTTPS, e.g.
# "X-Forwarded-Proto: https". Only when the proxy also strips that header from clients.
_proxy_header, _, _proxy_value = os.environ.get("SECURE_PROXY_SSL_HEADER", "").partition(":")
if _proxy_value.strip():
    SECURE_PROXY_SSL_HEADER = (
        "HTTP_" + _proxy_header.strip().upper().replace("-", "_"),
        _proxy_value.strip(),
    )
# Reverse proxies in front of Quorum that each append the address they received a request from
# to X-Forwarded-For (nginx: proxy_add_x_forwarded_for): the client's address, which the sign-in
# throttle counts, is read from there. 0: the connection's address, when nothing is in front;
# requests that come with X-Forwarded-For all the same are noted, logged and reported by
# `check --deploy` (quorum/forwarded.py).
QUORUM_PROXY_COUNT = int(os.environ.get("QUORUM_PROXY_COUNT", "0"))
SECURE_CONTENT_TYPE_NOSNIFF = True
# Links to the MLflow UI must not carry the request page's address along.
SECURE_REFERRER_POLICY = os.environ.get("SECURE_REFERRER_POLICY", "same-origin")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    # Before django_rq: its `rqworker` command serves all of Quorum's queues when none is named.
    "quorum",  # deploy and worker checks (quorum/checks.py), rqworker, the proxy note
    "django_rq",
    "axes",  # failed sign-ins: counted, locked out, listed in the admin (quorum/lockout.py)
    "csp",
    "ninja",  # serves the API docs' Swagger UI from its own static files, not a CDN
    "registry",
    "reviews",
    "identity",  # single sign-on (OpenID Connect) and CI's workload identity tokens
    "operations",  # /metrics, /healthz, /readyz, structured logs (docs/operations.md)
]

MIDDLEWARE = [
    # Before everything: probes and scrapers come by address, over plain HTTP, signed in to
    # nothing, so host validation, the HTTPS redirect, CSRF and the throttle must not see them.
    "operations.endpoints.OperationsEndpointsMiddleware",
    # The request id, for every line logged while the request is handled and its response.
    "operations.logs.RequestIdMiddleware",
    # Then, so that it sees every other request: notes X-Forwarded-For with no QUORUM_PROXY_COUNT.
    "quorum.forwarded.ForwardedForMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # The REST API answers JSON even for unknown routes and oversized bodies.
    "reviews.api.errors.ApiEdgeMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # After authentication: a signed-in user's pages are not kept by the browser.
    "quorum.caching.PrivatePagesMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last, as django-axes asks: turns a sign-in that hit the lockout into its 429 page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "quorum.urls"
WSGI_APPLICATION = "quorum.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # Searched before the apps' own: Quorum's templates override the admin's, which comes
        # first in INSTALLED_APPS, and django_rq's. Package data, so an installed Quorum has them.
        "DIRS": [Path(__file__).resolve().parent / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "identity.context.sign_in_options",
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
# The sign-in throttle first: a locked-out user or address is refused before any password check.
AUTHENTICATION_BACKENDS = [
    "quorum.lockout.SignInThrottle",
    # Passwords, as QUORUM_PASSWORD_LOGIN allows; then the identity provider's sign-ins, which
    # do nothing while OIDC_ISSUER is unset (identity/backends.py).
    "identity.backends.PasswordBackend",
    "identity.backends.ProviderBackend",
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT") or VAR_DIR / "static")
# Quorum's own static files are the `quorum` app's (quorum/static/, found as any app's are).
STATICFILES_DIRS = [
    # plotly.js as the plotly package ships it: served by us, never from a CDN.
    ("plotly", Path(plotly.__file__).parent / "package_data"),
]
# Serve straight from the finders unless collectstatic was run for production.
WHITENOISE_USE_FINDERS = env_bool("WHITENOISE_USE_FINDERS", True)
if not WHITENOISE_USE_FINDERS:
    # Production: `collectstatic` (a build step) writes compressed copies with a content hash in
    # their names, which WhiteNoise serves from STATIC_ROOT with far-future cache headers.
    STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }

# --- Content-Security-Policy (django-csp): this origin only, no inline code (quorum/csp.py) ---
CONTENT_SECURITY_POLICY = content_security_policy()

# --- Failed sign-ins (django-axes, quorum/lockout.py) ---------------------------------------
# Failures of one username from one address (web sign-in, admin sign-in; unknown API tokens, which
# name no user, per address) that lock it out, and for how long; each try while locked starts the
# wait again. Never an address alone: another person's right password from it is not refused.
QUORUM_LOGIN_FAILURE_LIMIT = int(os.environ.get("QUORUM_LOGIN_FAILURE_LIMIT", "10"))
QUORUM_LOGIN_LOCKOUT_MINUTES = int(os.environ.get("QUORUM_LOGIN_LOCKOUT_MINUTES", "15"))
AXES_FAILURE_LIMIT = QUORUM_LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(minutes=QUORUM_LOGIN_LOCKOUT_MINUTES)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_CLIENT_IP_CALLABLE = "quorum.lockout.client_address"
AXES_LOCKOUT_CALLABLE = "quorum.lockout.lockout_response"

# --- Single sign-on: OpenID Connect (identity/, docs/deploy.md) -----------------------------
# Unset OIDC_ISSUER: no provider, local passwords only (the demo). Set: the sign-in page offers
# "Sign in with OIDC_PROVIDER_NAME"; endpoints and keys come from the issuer's discovery document.
OIDC_ISSUER = os.environ.get("OIDC_ISSUER", "").rstrip("/")
OIDC_PROVIDER_NAME = os.environ.get("OIDC_PROVIDER_NAME", "your identity provider")
OIDC_RP_CLIENT_ID = os.environ.get("OIDC_CLIENT_ID", "")
OIDC_RP_CLIENT_SECRET = os.environ.get("OIDC_CLIENT_SECRET", "")
OIDC_RP_SCOPES = os.environ.get("OIDC_SCOPES", "openid email profile")
# mozilla-django-oidc's knobs, fixed: code flow with PKCE (S256), state and nonce checked, signed
# ID tokens only, the ID token kept in the session for the provider's logout.
OIDC_USE_PKCE = True
OIDC_USE_NONCE = True
OIDC_RP_SIGN_ALGO = os.environ.get("OIDC_SIGN_ALGO", "RS256")
OIDC_STORE_ID_TOKEN = True
OIDC_TIMEOUT = int(os.environ.get("OIDC_TIMEOUT", "10"))
OIDC_CALLBACK_CLASS = "identity.views.ProviderCallback"
OIDC_AUTHENTICATE_CLASS = "identity.views.ProviderSignIn"
# The claim that names a person's groups at the provider, and how those map to Quorum's groups:
# "provider-pattern=quorum-group,..." with exact names, globs ("ds-*") or "re:" regexes. The
# Quorum groups named here are managed by the provider: set at each sign-in, not in the admin
# or a policy file.
QUORUM_OIDC_GROUPS_CLAIM = os.environ.get("QUORUM_OIDC_GROUPS_CLAIM", "groups")
QUORUM_OIDC_GROUP_MAP = os.environ.get("QUORUM_OIDC_GROUP_MAP", "")
# Provider groups (same patterns) whose members get Quorum's staff flag; unset: the flag is
# left as an admin set it.
QUORUM_OIDC_STAFF_GROUPS = os.environ.get("QUORUM_OIDC_STAFF_GROUPS", "")
# The claim a new person's Quorum username is taken from.
QUORUM_OIDC_USERNAME_CLAIM = os.environ.get("QUORUM_OIDC_USERNAME_CLAIM", "preferred_username")
# Local passwords: "on" (everyone: the demo), "superusers" (the break-glass administrator only),
# or "off".
QUORUM_PASSWORD_LOGIN = os.environ.get("QUORUM_PASSWORD_LOGIN", "on").strip().lower()
if QUORUM_PASSWORD_LOGIN not in {"on", "superusers", "off"}:
    raise ImproperlyConfigured("QUORUM_PASSWORD_LOGIN must be one of: on, superusers, off")
# CI without long-lived secrets: a JSON list of trusted token issuers, each with its audience
# and rules mapping claims to a service user (docs/ci.md), e.g.
# [{"issuer": "https://token.actions.githubusercontent.com", "audience": "quorum",
#   "users": [{"user": "ci-fraud", "claims": {"repository": "acme/fraud"}}]}]
QUORUM_CI_ISSUERS = os.environ.get("QUORUM_CI_ISSUERS", "")

if OIDC_ISSUER:
    # Signing out posts a form whose answer redirects to the provider's logout page.
    from urllib.parse import urlsplit

    _issuer = urlsplit(OIDC_ISSUER)
    CONTENT_SECURITY_POLICY["DIRECTIVES"]["form-action"].append(
        f"{_issuer.scheme}://{_issuer.netloc}"
    )

# --- Redis and RQ -------------------------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
# Pages kept in Redis per user and browser until the next database write, and never longer than
# this many seconds (the time they show); 0 makes every page afresh (infra/page_cache.py).
QUORUM_PAGE_CACHE_SECONDS = int(os.environ.get("QUORUM_PAGE_CACHE_SECONDS", "30"))
# Quorum's queues, in the order a worker takes jobs from them: a transition someone is waiting
# for first, then the reconciler and other small jobs, mail, and syncs last (follow-up syncs of a
# burst of transitions then run after the burst, one per model). `manage.py rqworker` with no
# queue named serves all of them (quorum/management/commands/rqworker.py).
QUORUM_QUEUES = ("transitions", "default", "notifications", "sync")
RQ_QUEUES = {name: {"URL": REDIS_URL, "DEFAULT_TIMEOUT": 600} for name in QUORUM_QUEUES}
# Enqueue at once. Code that must wait for a commit says so with transaction.on_commit, where it
# can also survive Redis being down (the reconciler re-enqueues what was missed). Every worker
# runs transitions in its own process and forks a work horse for the other jobs
# (quorum/workers.py).
RQ = {"COMMIT_MODE": "auto", "WORKER_CLASS": "quorum.workers.QuorumWorker"}

# --- MLflow -------------------------------------------------------------------------------
MLFLOW_TRACKING_URI = os.environ.get("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
# Where reviewers open runs in the MLflow UI; the tracking server serves it by default.
MLFLOW_UI_URL = os.environ.get("MLFLOW_UI_URL", MLFLOW_TRACKING_URI).rstrip("/")
# The MLflow client retries for minutes by default; an outage must fail in seconds instead.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
# Workers read model artifacts (registry.evidence, registry.content): no progress bars in their
# logs.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
# The MLflow client reports usage to its developers unless told not to: not from our processes.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
MLFLOW_WEBHOOK_SECRET = os.environ.get("MLFLOW_WEBHOOK_SECRET", "")
# Webhook deliveries older than this are refused as replays.
MLFLOW_WEBHOOK_MAX_AGE_SECONDS = int(os.environ.get("MLFLOW_WEBHOOK_MAX_AGE_SECONDS", "300"))

# --- Quorum -------------------------------------------------------------------------------
DEVELOPMENT_BASE_URL = "http://127.0.0.1:8000"
QUORUM_BASE_URL = os.environ.get("QUORUM_BASE_URL", DEVELOPMENT_BASE_URL).rstrip("/")
QUORUM_SYNC_INTERVAL = int(os.environ.get("QUORUM_SYNC_INTERVAL", "60"))
QUORUM_FULL_SYNC_CRON = os.environ.get("QUORUM_FULL_SYNC_CRON", "0 3 * * *")
# Staff are mailed once when this many registry syncs in a row have failed (0: never).
QUORUM_SYNC_FAILURE_MAIL_AFTER = int(os.environ.get("QUORUM_SYNC_FAILURE_MAIL_AFTER", "3"))
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

# The content digest of each version (registry.content): its model files are read from MLflow by
# this many threads per version, this many bytes at a time (so a worker holds at most their
# product of file data), by a job that hands over to a successor after this many seconds. A
# version with more files, or more bytes, than the limits is "unknown" (a registry can list any
# number, and a model too large to read within the job's hour would be tried again and again).
QUORUM_CONTENT_READERS = int(os.environ.get("QUORUM_CONTENT_READERS", "4"))
QUORUM_CONTENT_CHUNK_BYTES = int(os.environ.get("QUORUM_CONTENT_CHUNK_BYTES", str(1024 * 1024)))
QUORUM_CONTENT_BATCH_SECONDS = int(os.environ.get("QUORUM_CONTENT_BATCH_SECONDS", "300"))
QUORUM_CONTENT_MAX_FILES = int(os.environ.get("QUORUM_CONTENT_MAX_FILES", "10000"))
QUORUM_CONTENT_MAX_BYTES = int(os.environ.get("QUORUM_CONTENT_MAX_BYTES", str(100 * 1000**3)))
# Versions a worker reads from MLflow at once (evidence, content digests): most is waiting.
QUORUM_VERSION_READERS = int(os.environ.get("QUORUM_VERSION_READERS", "4"))
# When open requests' model files are read again to find bytes changed behind MLflow's back
# (`reviews.decisions.pins.recheck_open`; the transition worker checks them again before moving).
QUORUM_CONTENT_RECHECK_CRON = os.environ.get("QUORUM_CONTENT_RECHECK_CRON", "17 * * * *")

# Seconds between attempts of a failed MLflow transition (an outage, an error): the backoff.
QUORUM_TRANSITION_RETRY_INTERVALS = [
    int(x) for x in env_list("QUORUM_TRANSITION_RETRY_INTERVALS", "5,15,30,60,120")
]
# After the listed intervals, attempts go on at the last interval until the waits add up to this
# many seconds; only then is the transition `failed` and an admin asked to retry it. 0: only the
# listed intervals. An MLflow restart or a short outage then ends `done` with nobody involved.
QUORUM_TRANSITION_RETRY_WINDOW = int(os.environ.get("QUORUM_TRANSITION_RETRY_WINDOW", "900"))
QUORUM_TRANSITION_TIMEOUT = int(os.environ.get("QUORUM_TRANSITION_TIMEOUT", "300"))
# Seconds between runs of the reconciler (reviews/execution/reconciler.py, scheduled in
# quorum/cron.py).
QUORUM_RECONCILE_INTERVAL = int(os.environ.get("QUORUM_RECONCILE_INTERVAL", "60"))
# A started transition whose worker sent no heartbeat for this long is presumed dead and is
# re-queued by the reconciler (RQ itself notices only minutes later). Workers heartbeat every 30 s
# (RQ's job monitoring interval): keep this at 2-3 times that.
QUORUM_TRANSITION_HEARTBEAT_TIMEOUT = int(
    os.environ.get("QUORUM_TRANSITION_HEARTBEAT_TIMEOUT", "90")
)
# The reconciler re-queues a request whose job was lost at most this many times (since its
# approval or an admin's retry); the next loss ends it `failed`, and the requester and staff are
# mailed.
QUORUM_TRANSITION_MAX_REQUEUES = int(os.environ.get("QUORUM_TRANSITION_MAX_REQUEUES", "5"))
# Break-glass moves one user may make in 24 hours (reviews/emergency/break_glass.py): enough for an
# incident, too few to become the normal path.
QUORUM_BREAK_GLASS_PER_DAY = int(os.environ.get("QUORUM_BREAK_GLASS_PER_DAY", "3"))
# A transition job queued this many seconds with no worker consuming its queue is reported on the
# request's page, in the admin and by `manage.py check`, with the command that starts a worker.
QUORUM_TRANSITION_WAIT_WARNING = int(os.environ.get("QUORUM_TRANSITION_WAIT_WARNING", "120"))

# The Ed25519 key that signs the approval proof written on every promoted version
# (reviews/execution/proof_keys.py): a PEM private key, or the path to one. Unset, a key is
# generated at first use into QUORUM_VAR_DIR/signing-key.pem (the demo; `check --deploy` refuses it,
# since every host would make its own). Public keys of earlier signing keys stay published at
# /api/v1/keys, so proofs they signed still verify: PEM public keys, or a path to a file of them.
QUORUM_SIGNING_KEY = os.environ.get("QUORUM_SIGNING_KEY", "")
QUORUM_SIGNING_KEY_FILE = VAR_DIR / "signing-key.pem"
QUORUM_PREVIOUS_PUBLIC_KEYS = os.environ.get("QUORUM_PREVIOUS_PUBLIC_KEYS", "")

# Notifications (reviews/notify/). Approvers who have not voted get a reminder when a pending
# request has this many seconds left; staff hear of a request with no vote at half its lifetime.
QUORUM_REMINDER_BEFORE = int(os.environ.get("QUORUM_REMINDER_BEFORE", str(24 * 3600)))
# When the periodic job sends reminders and escalations and sweeps the outbox (cron syntax).
QUORUM_NOTIFY_CRON = os.environ.get("QUORUM_NOTIFY_CRON", "* * * * *")
# Seconds between a failed mail or webhook job and its next try (one try more than listed).
QUORUM_NOTIFY_RETRY_INTERVALS = [
    int(x) for x in env_list("QUORUM_NOTIFY_RETRY_INTERVALS", "10,60,300")
]
# Outgoing webhooks: JSON for every decision and execution result, POSTed to each URL, signed
# with HMAC-SHA256 of "<timestamp>.<body>" under this secret (X-Quorum-Signature: sha256=<hex>).
QUORUM_WEBHOOK_URLS = env_list("QUORUM_WEBHOOK_URLS", "")
QUORUM_WEBHOOK_SECRET = os.environ.get("QUORUM_WEBHOOK_SECRET", "")
QUORUM_WEBHOOK_TIMEOUT = int(os.environ.get("QUORUM_WEBHOOK_TIMEOUT", "10"))
if QUORUM_WEBHOOK_URLS and not QUORUM_WEBHOOK_SECRET:
    raise ImproperlyConfigured("QUORUM_WEBHOOK_URLS is set: set QUORUM_WEBHOOK_SECRET to sign them")

# --- Mail: EMAIL_URL, e.g. "submission://user:password@smtp.example.com" (quorum/mail_settings.py)
EMAIL_URL = os.environ.get("EMAIL_URL") or "console://"
_mail = mail_settings(EMAIL_URL, project_dir=PROJECT_DIR, var_dir=VAR_DIR)
EMAIL_BACKEND, EMAIL_FILE_PATH, EMAIL_TIMEOUT = _mail.backend, _mail.file_path, _mail.timeout
EMAIL_HOST, EMAIL_PORT = _mail.host, _mail.port
EMAIL_HOST_USER, EMAIL_HOST_PASSWORD = _mail.user, _mail.password
EMAIL_USE_TLS, EMAIL_USE_SSL = _mail.use_tls, _mail.use_ssl
DEFAULT_FROM_EMAIL, SERVER_EMAIL = _mail.default_from_email, _mail.server_email

# --- Running it as a service (docs/operations.md) --------------------------------------------
# /metrics answers a scraper that sends this bearer token, or connects from one of these
# addresses (CIDRs, comma-separated: "10.0.0.0/8,127.0.0.1"); with neither set it is off (404).
QUORUM_METRICS_TOKEN = env_secret("QUORUM_METRICS_TOKEN", min_length=24)
QUORUM_METRICS_ALLOW = env_networks("QUORUM_METRICS_ALLOW")
# /readyz counts a worker alive while its last heartbeat is this recent. An idle RQ worker beats
# every 405 s and RQ drops its record after 480 s (operations/queue_state.py).
QUORUM_WORKER_HEARTBEAT_WINDOW = int(os.environ.get("QUORUM_WORKER_HEARTBEAT_WINDOW", "480"))

# Everything to standard error, which gunicorn, the workers and systemd or the platform collect:
# plain lines, or with QUORUM_LOG_FORMAT=json one JSON object per line (operations/logs.py).
QUORUM_LOG_FORMAT = env_choice("QUORUM_LOG_FORMAT", ("plain", "json"))
LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO")
LOGGING = logging_settings(QUORUM_LOG_FORMAT, LOG_LEVEL)
if QUORUM_LOG_FORMAT == "json":
    # MLflow told not to install handlers of its own: every line goes through the JSON one.
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")
