"""Periodic work, run by `manage.py rqcron quorum.cron` (RQ's cron scheduler).

The scheduler only enqueues; workers listening on the `sync` queue run the jobs.

More than one scheduler may be running (two hosts, a restart that overlaps the old process), so a
sync can be enqueued twice. That is harmless: `registry.sync` takes a database row lock for the
whole sync, so the second run waits for the first and then finds nothing new, at the cost of a
couple of MLflow calls.
"""

from django.conf import settings
from rq import cron

from registry.jobs import SYNC_QUEUE, sync_full, sync_incremental
from reviews.decisions.pins import recheck_open
from reviews.execution.reconciler import reconcile
from reviews.notify import QUEUE as NOTIFY_QUEUE
from reviews.notify import periodic as notify_periodic

cron.register(
    sync_incremental,
    queue_name=SYNC_QUEUE,
    interval=settings.QUORUM_SYNC_INTERVAL,
    # With no worker running, incremental syncs would pile up; each one supersedes the ones
    # before it, so a few intervals' worth of waiting is all one is worth.
    ttl=max(5 * settings.QUORUM_SYNC_INTERVAL, 300),
    name="quorum.sync_incremental",
)

cron.register(
    sync_full,
    queue_name=SYNC_QUEUE,
    cron=settings.QUORUM_FULL_SYNC_CRON,
    # A full sync of a large registry outlasts the queue's default timeout.
    job_timeout=3600,
    name="quorum.sync_full",
)

# Expire overdue requests, re-queue approved transitions whose job was lost, classify registry
# changes. Two schedulers running it at once is harmless too: request rows are locked one at a
# time and transition jobs have ids derived from their request.
# The scheduler stores each job's function as a dotted path
# ("reviews.execution.reconciler.reconcile"); the reconciler used to be
# "reviews.reconciler.reconcile" and before that "reviews.jobs.reconcile", which
# reviews/reconciler.py and reviews/jobs.py keep resolvable for the jobs a scheduler of an earlier
# release enqueued.
cron.register(
    reconcile,
    queue_name="default",
    interval=settings.QUORUM_RECONCILE_INTERVAL,
    ttl=max(5 * settings.QUORUM_RECONCILE_INTERVAL, 300),
    name="quorum.reconcile",
)

# Reminders and escalations (each recorded once per request under its row lock), then the mail and
# webhooks still pending in the outbox (claimed one by one, so concurrent runs send nothing twice).
cron.register(
    notify_periodic,
    queue_name=NOTIFY_QUEUE,
    cron=settings.QUORUM_NOTIFY_CRON,
    # Each run sends everything pending; runs left waiting for a worker add nothing.
    ttl=300,
    name="quorum.notify",
)

# Open requests' model files read again: approvals of bytes rewritten in the artifact store go
# stale before anyone relies on them. Reading costs what downloading the models costs.
cron.register(
    recheck_open,
    queue_name="default",
    cron=settings.QUORUM_CONTENT_RECHECK_CRON,
    job_timeout=3600,
    ttl=3600,
    name="quorum.content_recheck",
)
