"""WSGI entry point for gunicorn and runserver."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "quorum.settings")
application = get_wsgi_application()

# Quorum loads MLflow at its first call (registry.mlflow_client); a web process loads it at start
# instead, so that the first /readyz or page that asks MLflow answers as fast as the next.
from registry.mlflow_client import load_mlflow  # noqa: E402

load_mlflow()
