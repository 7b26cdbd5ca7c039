"""The final-approval race, shared by tests/reliability/test_race.py (20 rounds) and
bench/race.py (200 rounds).

One round: a request for Production whose lead sign-off is in; 20 approvers, each in a thread with
its own database connection, cast the one missing approval at the same instant. Exactly one vote
must count and the 19 others find the request closed; the request is approved once, with one
"request.approved" audit event and one transition job; the worker then moves the version in MLflow
once. Rounds alternate versions 1 and 2 to Production, so each round is a real stage change.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import django_rq
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User

from registry import content
from registry.jobs import SYNC_QUEUE
from registry.mlflow_client import RegistryClient
from registry.models import ChangeKind
from registry.sync import sync_registry
from reviews.decisions import opening, voting
from reviews.execution import jobs
from reviews.models import AuditEvent
from reviews.policies.loading import policies_load
from tests.concurrency import approve_at_once
from tests.processes import BurstWorker

RACERS = 20

POLICY = """
groups:
  race-leads: [race-lead]
  race-approvers: [{approvers}]
policies:
  - name: race
    models: ["{model}"]
    targets: [Production]
    require:
      - {{group: race-leads, approvals: 1}}
      - {{group: race-approvers, approvals: 1}}
    archive_existing: true
"""


@dataclass
class Arena:
    model: str
    client: RegistryClient
    lead: User
    requester: User
    racers: list[User] = field(default_factory=list)


def prepare(client: RegistryClient, model: str, racers: int = RACERS) -> Arena:
    """A model with two versions in MLflow and the mirror, the racers and their policy."""
    experiment = client.experiment_id("race")
    client.create_model(model)
    for number in (1, 2):
        run_id = client.log_run(
            experiment, run_name=f"{model}-{number}", params={}, metrics={"accuracy": 0.9}
        )
        # Model files, so the version has content to digest (nothing is approved without it).
        client.log_text(run_id, "flavors: {}\n", "model/MLmodel")
        client.log_text(run_id, f"weights of {model} v{number}\n", "model/weights/model.txt")
        client.create_version(model, source=f"runs:/{run_id}/model", run_id=run_id)
    sync_registry(model=model, client=client)
    content.digest_missing(client=client)  # the digest job that follows a sync
    users = get_user_model().objects
    names = [f"race-{i}" for i in range(racers)]
    arena = Arena(
        model=model,
        client=client,
        lead=users.create_user("race-lead"),
        racers=[users.create_user(name) for name in names],
        requester=users.create_user("race-requester"),
    )
    policies_load(text=POLICY.format(approvers=", ".join(names), model=model))
    return arena


@dataclass
class Outcome:
    round: int
    votes: Counter
    decision: str
    approved_events: int
    job_ids: list[str]
    expected_job_id: str
    execution: str
    stage_changes: int
    mlflow_stage: str | None  # None: the version is gone from MLflow

    @property
    def ok(self) -> bool:
        return (
            self.votes == Counter({"counted": 1, "RequestClosed": self.votes.total() - 1})
            and self.decision == "approved"
            and self.approved_events == 1
            and self.job_ids == [self.expected_job_id]
            and self.execution == "done"
            and self.stage_changes == 1
            and self.mlflow_stage == "Production"
        )


def play_round(arena: Arena, round_number: int, queue) -> Outcome:
    """One round of the race, its job run by a worker in this process; what came out of it."""
    version = 1 + round_number % 2
    request = opening.request_create(
        model=arena.model, version=version, target="Production", requester=arena.requester
    )
    voting.vote_cast(request_id=request.pk, user=arena.lead, decision="approve")
    votes = Counter(approve_at_once(request.pk, arena.racers))
    job_ids = list(queue.job_ids)
    # The transition, then the sync that mirrors it (a job of its own on the sync queue).
    queues = [queue, django_rq.get_queue(SYNC_QUEUE)]
    BurstWorker(queues, connection=queue.connection).work(burst=True, logging_level="WARNING")
    request.refresh_from_db()
    in_mlflow = arena.client.get_version(arena.model, version)
    moves = request.caused_changes.filter(
        kind=ChangeKind.STAGE_CHANGED, version=request.version, new="Production"
    )
    return Outcome(
        round=round_number,
        votes=votes,
        decision=request.decision,
        approved_events=AuditEvent.objects.filter(
            action="request.approved", request=request
        ).count(),
        job_ids=job_ids,
        expected_job_id=jobs.transition_job_id(request),
        execution=request.execution,
        stage_changes=moves.count(),
        mlflow_stage=in_mlflow.stage if in_mlflow is not None else None,
    )
