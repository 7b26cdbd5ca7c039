"""An RQ worker as `manage.py rqworker [QUEUE ...]` runs it (all of Quorum's queues when none is
named), with the job monitoring interval (how often a busy worker heartbeats) as an option, which
rqworker lacks.

    python tests/run_worker.py [--heartbeat SECONDS] [--with-scheduler] [QUEUE ...]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "quorum.settings")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--heartbeat", type=int, default=30)
    parser.add_argument("--with-scheduler", action="store_true")
    parser.add_argument("queues", nargs="*")
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings
    from django_rq.utils import reset_db_connections
    from django_rq.workers import get_worker

    worker = get_worker(
        *(args.queues or settings.QUORUM_QUEUES), job_monitoring_interval=args.heartbeat
    )
    reset_db_connections()  # no connection crosses the fork into the work horse
    worker.work(with_scheduler=args.with_scheduler, logging_level="INFO")


if __name__ == "__main__":
    main()
