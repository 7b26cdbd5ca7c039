"""`manage.py rqworker`: django-rq's worker command, serving all of Quorum's queues by default.

django-rq's own command listens only on `default` when no queue is named, so a worker started
that way would never run a transition, a sync or a mail. Here no queue named means every queue in
settings.QUORUM_QUEUES, in their priority order; naming queues still restricts a worker to them.
"""

from django.conf import settings
from django_rq.management.commands.rqworker import Command as RQWorkerCommand


class Command(RQWorkerCommand):
    help = "Runs an RQ worker on the queues named, or on all of Quorum's queues when none is."

    def handle(self, *args, **options):
        return super().handle(*(args or settings.QUORUM_QUEUES), **options)
