"""Django's LOGGING for Quorum: everything to standard error, which gunicorn, the workers and
systemd or the platform collect; plain lines, or one JSON object per line
(`operations.logs.JsonFormatter`)."""

from __future__ import annotations

QUORUM_LOGGERS = ("registry", "reviews", "quorum", "identity", "infra", "operations")


def logging_settings(log_format: str, level: str) -> dict:
    """`log_format` is "plain" or "json"; `level` is Quorum's own loggers' level."""
    ours = {"handlers": ["console"], "level": level}
    config: dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
            "json": {"()": "operations.logs.JsonFormatter"},
        },
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": log_format,
            }
        },
        "loggers": {
            **{name: dict(ours) for name in QUORUM_LOGGERS},
            # Every server error with its traceback (Django logs it here with exc_info). Without
            # this Django sends it only to ADMINS by mail, or to the console only with DEBUG on.
            "django.request": {"handlers": ["console"], "level": "ERROR", "propagate": False},
            # Failed sign-ins and lockouts (quorum/lockout.py).
            "axes": {"handlers": ["console"], "level": "WARNING", "propagate": False},
        },
    }
    if log_format == "json":
        # Every line is JSON: the libraries' warnings through the same handler (root), and RQ's
        # worker lines too (RQ adds plain handlers of its own only where none would take them).
        config["root"] = {"handlers": ["console"], "level": "WARNING"}
        config["loggers"]["rq"] = dict(ours)
        for logger in config["loggers"].values():
            logger["propagate"] = False
    return config
