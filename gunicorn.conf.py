"""gunicorn settings for Quorum's web process (`web` in the Procfile), each from the environment.

A page is a few bounded database reads; what is slow (MLflow transitions, syncs, mail) runs in RQ
workers. The one slow thing a page may do is fetch a run's metric history from MLflow on its
first view, so each process runs a few threads rather than one. Sizing: docs/deploy.md.
"""

import os
from pathlib import Path

# GUNICORN_BIND wins; else all interfaces on PORT, as platforms that set PORT expect.
bind = [os.environ.get("GUNICORN_BIND") or f"0.0.0.0:{os.environ.get('PORT', '8000')}"]
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
# Above the worst MLflow call a page can wait for (MLFLOW_HTTP_REQUEST_TIMEOUT 10 s, 2 retries).
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
# A restart (SIGHUP, or SIGTERM during a rolling deploy) lets requests in flight finish.
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
# Seconds an idle client connection stays open. Behind a load balancer that keeps connections to
# its backends, set it above the balancer's idle timeout (AWS ALB: 60 s, so 65), or the balancer
# may send a request on a connection gunicorn is closing. A graceful stop waits for these too.
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
# Recycle each process now and then, staggered, so a slow leak never becomes an outage. Not too
# often: a recycle closes that process's kept-alive connections (docs/benchmarks.md).
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "10000"))
max_requests_jitter = max_requests // 10
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-")
errorlog = "-"
# Heartbeat files on a RAM disk: on some container filesystems a write can stall long enough for
# the master to kill a healthy worker. gunicorn creates them with mkstemp and unlinks them at once.
RAM_DISK = "/dev/shm"  # noqa: S108
if Path(RAM_DISK).is_dir():
    worker_tmp_dir = RAM_DISK
# gunicorn ≥ 26 opens a control socket at one path per user; two servers on a host would share it,
# and nothing here uses it.
control_socket_disable = True
