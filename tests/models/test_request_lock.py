"""TransitionRequest.objects.locked: the one way a request's row is locked to change its state."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import DatabaseError, connection, transaction
from django.db.transaction import TransactionManagementError
from django.utils import timezone

from reviews.decisions import deciding
from reviews.errors import RequestNotFound
from reviews.execution import jobs
from reviews.models import Decision, TransitionRequest
from tests.factories import make_model, make_version


def make_request(requester, *, target: str = "Staging") -> TransitionRequest:
    version = make_version(make_model())
    return TransitionRequest.objects.create(
        version=version,
        target=target,
        requester=requester,
        expires_at=timezone.now() + timedelta(days=1),
    )


@pytest.mark.django_db
def test_locked_returns_the_request_with_its_version_model_and_requester_loaded(
    requester, django_assert_num_queries
):
    request = make_request(requester)

    with transaction.atomic():
        with django_assert_num_queries(1):
            locked = TransitionRequest.objects.locked(request.pk)
            assert (locked.version.model.name, locked.requester.username) == (
                request.version.model.name,
                "requester",
            )

    assert locked == request


@pytest.mark.django_db
@pytest.mark.parametrize("pk", [999_999, "abc", None])
def test_locked_raises_does_not_exist_for_an_id_no_request_has(requester, pk):
    make_request(requester)

    with transaction.atomic(), pytest.raises(TransitionRequest.DoesNotExist):
        TransitionRequest.objects.locked(pk)


@pytest.mark.django_db(transaction=True)
def test_locked_outside_a_transaction_is_refused(requester):
    request = make_request(requester)

    with pytest.raises(TransactionManagementError):
        TransitionRequest.objects.locked(request.pk)


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL")
def test_locked_holds_the_row_until_the_transaction_ends(requester):
    request = make_request(requester)
    held, release, done = threading.Event(), threading.Event(), threading.Event()

    def hold() -> None:
        try:
            with transaction.atomic():
                TransitionRequest.objects.locked(request.pk)
                held.set()
                release.wait(10)
        finally:
            connection.close()
            done.set()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(10)
        with transaction.atomic(), pytest.raises(DatabaseError, match="could not obtain lock"):
            TransitionRequest.objects.select_for_update(nowait=True).get(pk=request.pk)
    finally:
        release.set()
        holder.join(10)
    assert done.is_set()
    with transaction.atomic():
        assert TransitionRequest.objects.select_for_update(nowait=True).get(pk=request.pk)


# -- what each caller makes of a request that is not there ------------------------------------


@pytest.mark.django_db
def test_a_person_naming_a_missing_request_is_told_there_is_none(admin_user):
    with pytest.raises(RequestNotFound, match=r"There is no request #999999\."):
        deciding.request_cancel(request_id=999_999, user=admin_user)
    with pytest.raises(RequestNotFound, match=r"There is no request #abc\."):
        deciding.transition_retry(request_id="abc", user=admin_user)


@pytest.mark.django_db
def test_a_transition_job_for_a_missing_request_does_nothing_and_says_so():
    assert jobs.execute_transition(999_999) == "request #999999 does not exist: nothing to do"


@pytest.mark.django_db
def test_a_transition_job_for_an_undecided_request_does_nothing(requester):
    request = make_request(requester)

    assert (
        jobs.execute_transition(request.pk)
        == f"request #{request.pk} is not approved: nothing to do"
    )
    assert TransitionRequest.objects.get(pk=request.pk).decision == Decision.PENDING
