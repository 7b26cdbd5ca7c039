"""Break glass through a real MLflow and a real worker: the move made at once, the required
groups mailed, the ratification opened; ratified it stays, rejected or unratified in time staff
are alerted and, with `revert`, the previous holder comes back. Refusals change nothing: a
non-member, no reason, one's own open request, the per-user limit. The API, the page's form (a
confirmation naming the move before it, what was typed kept through a refusal or "Back") and the
staff report."""

from __future__ import annotations

import html
import re
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.urls import reverse

from registry.models import RegisteredModel
from reviews.api.auth import token_create
from reviews.decisions import deciding, opening, voting
from reviews.emergency.break_glass import break_glass_move
from reviews.errors import BreakGlassLimit, CommentRequired, NotAllowed, SelfApprovalNotAllowed
from reviews.insight.holder_history import holder_history
from reviews.models import (
    AuditEvent,
    Decision,
    Execution,
    Notification,
    NotificationKind,
    RequestKind,
    TransitionRequest,
)
from reviews.policies.loading import policies_load
from tests.factories import approve_all, policies_with
from tests.waiting import join_all

pytestmark = pytest.mark.django_db


def glass_policies(on_unratified: str) -> str:
    return policies_with(break_glass=f"ratify_within: 1h, on_unratified: {on_unratified}")


@pytest.fixture
def glass(promoted, cast):
    """`glass(on_unratified)`: the production policy lets `outsider` (oncall) break glass;
    everyone has an address, so mail can be counted."""
    for user in cast.values():
        user.email = f"{user.username}@example.com"
        user.save(update_fields=["email"])

    def load(on_unratified: str = "revert") -> str:
        policies_load(text=glass_policies(on_unratified))
        return promoted

    return load


def moved_and_done(model, outsider, transitions, syncs, simple_worker, capture):
    with capture(execute=True):
        move = break_glass_move(
            model=model, version=3, target="Production", user=outsider, reason="v1 leaks PII"
        )
    simple_worker(transitions, syncs)
    move.refresh_from_db()
    return move


def test_break_glass_moves_at_once_notifies_and_opens_the_ratification(
    glass, outsider, mlflow_client, transitions, syncs, simple_worker,
    django_capture_on_commit_callbacks,
):  # fmt: skip
    model = glass()
    move = moved_and_done(
        model, outsider, transitions, syncs, simple_worker, django_capture_on_commit_callbacks
    )

    assert (move.kind, move.decision, move.execution) == (
        RequestKind.BREAK_GLASS,
        Decision.APPROVED,
        Execution.DONE,
    )
    assert mlflow_client.get_version(model, 3).stage == "Production"
    assert mlflow_client.get_version(model, 1).stage == "Archived"
    told = Notification.objects.filter(kind=NotificationKind.BREAK_GLASS)
    assert sorted(told.values_list("recipient__username", flat=True)) == [
        "lead",
        "scientist1",
        "scientist2",
        "scientist3",
    ]
    ratification = TransitionRequest.objects.get(kind=RequestKind.RATIFICATION)
    assert ratification.ratifies_id == move.pk and ratification.decision == Decision.PENDING
    assert ratification.expires_at == move.created_at + timedelta(hours=1)
    assert ratification.policy_snapshot["require"][0] == {"group": "ml-leads", "approvals": 1}
    used = AuditEvent.objects.get(action="break_glass.used")
    assert used.details["reason"] == "v1 leaks PII" and used.actor == "outsider"
    latest = holder_history(RegisteredModel.objects.get(name=model)).of("Production")[-1]
    assert (latest.holding.version, latest.began.kind) == (3, "break_glass")


def test_a_ratified_move_stays(
    glass, outsider, lead, scientist1, scientist2, mlflow_client, transitions, syncs,
    simple_worker, django_capture_on_commit_callbacks,
):  # fmt: skip
    model = glass()
    moved_and_done(
        model, outsider, transitions, syncs, simple_worker, django_capture_on_commit_callbacks
    )
    ratification = TransitionRequest.objects.get(kind=RequestKind.RATIFICATION)
    approve_all(
        ratification, lead, scientist1, scientist2, capture=django_capture_on_commit_callbacks
    )
    simple_worker(transitions, syncs)

    ratification.refresh_from_db()
    assert (ratification.decision, ratification.execution) == (Decision.APPROVED, Execution.DONE)
    assert mlflow_client.get_version(model, 3).stage == "Production"
    assert not AuditEvent.objects.filter(action="break_glass.unratified").exists()


def test_a_rejected_ratification_alerts_staff_and_reverts(
    glass, outsider, scientist1, mlflow_client, transitions, syncs, simple_worker,
    django_capture_on_commit_callbacks,
):  # fmt: skip
    model = glass("revert")
    move = moved_and_done(
        model, outsider, transitions, syncs, simple_worker, django_capture_on_commit_callbacks
    )
    ratification = TransitionRequest.objects.get(kind=RequestKind.RATIFICATION)
    with django_capture_on_commit_callbacks(execute=True):
        voting.vote_cast(
            request_id=ratification.pk, user=scientist1, decision="reject", comment="no incident"
        )
    simple_worker(transitions, syncs)

    assert mlflow_client.get_version(model, 1).stage == "Production"
    assert mlflow_client.get_version(model, 3).stage == "Archived"
    revert = TransitionRequest.objects.get(kind=RequestKind.ROLLBACK, undoes=move)
    assert (revert.version.version, revert.execution) == (1, Execution.DONE)
    unratified = AuditEvent.objects.get(action="break_glass.unratified")
    assert unratified.details["reverted_to"] == 1 and unratified.details["decision"] == "rejected"
    staff = Notification.objects.filter(kind=NotificationKind.UNRATIFIED)
    assert list(staff.values_list("recipient__username", flat=True)) == ["admin"]


def test_unratified_in_time_alerts_and_alert_alone_does_not_revert(
    glass, outsider, mlflow_client, transitions, syncs, simple_worker,
    django_capture_on_commit_callbacks,
):  # fmt: skip
    model = glass("alert")
    moved_and_done(
        model, outsider, transitions, syncs, simple_worker, django_capture_on_commit_callbacks
    )
    ratification = TransitionRequest.objects.get(kind=RequestKind.RATIFICATION)

    assert (
        deciding.requests_expire_overdue(now=ratification.expires_at - timedelta(seconds=1)) == []
    )
    with django_capture_on_commit_callbacks(execute=True):
        expired = deciding.requests_expire_overdue(
            now=ratification.expires_at + timedelta(seconds=1)
        )
    simple_worker(transitions, syncs)

    assert expired == [ratification.pk]
    unratified = AuditEvent.objects.get(action="break_glass.unratified")
    assert unratified.details["decision"] == "expired" and unratified.details["reverted_to"] is None
    assert Notification.objects.filter(kind=NotificationKind.UNRATIFIED).exists()
    assert mlflow_client.get_version(model, 3).stage == "Production"
    assert not TransitionRequest.objects.filter(kind=RequestKind.ROLLBACK).exists()


def test_unratified_in_time_with_revert_puts_the_previous_holder_back(
    glass, outsider, mlflow_client, transitions, syncs, simple_worker,
    django_capture_on_commit_callbacks,
):  # fmt: skip
    model = glass("revert")
    moved_and_done(
        model, outsider, transitions, syncs, simple_worker, django_capture_on_commit_callbacks
    )
    ratification = TransitionRequest.objects.get(kind=RequestKind.RATIFICATION)
    with django_capture_on_commit_callbacks(execute=True):
        deciding.requests_expire_overdue(now=ratification.expires_at + timedelta(seconds=1))
    simple_worker(transitions, syncs)
    assert mlflow_client.get_version(model, 1).stage == "Production"


def test_refusals_change_nothing(glass, outsider, requester, settings):
    model = glass()
    with pytest.raises(NotAllowed, match="Only members of oncall"):
        break_glass_move(model=model, version=3, target="Production", user=requester, reason="x")
    with pytest.raises(CommentRequired):
        break_glass_move(model=model, version=3, target="Production", user=outsider, reason=" ")
    with pytest.raises(NotAllowed, match="does not allow breaking glass"):
        break_glass_move(model=model, version=3, target="Staging", user=outsider, reason="x")
    own = opening.request_create(model=model, version=2, target="Production", requester=outsider)
    with pytest.raises(SelfApprovalNotAllowed, match=f"You requested #{own.pk} yourself"):
        break_glass_move(model=model, version=2, target="Production", user=outsider, reason="x")
    assert TransitionRequest.objects.filter(kind=RequestKind.BREAK_GLASS).count() == 0

    settings.QUORUM_BREAK_GLASS_PER_DAY = 1
    break_glass_move(model=model, version=3, target="Production", user=outsider, reason="first")
    with pytest.raises(BreakGlassLimit, match="QUORUM_BREAK_GLASS_PER_DAY=1"):
        break_glass_move(model=model, version=1, target="@champion", user=outsider, reason="2nd")
    assert TransitionRequest.objects.filter(kind=RequestKind.BREAK_GLASS).count() == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL")
def test_the_per_person_limit_holds_for_moves_made_at_the_same_instant(
    glass, outsider, settings, transitions, syncs
):
    """Two moves by one person at one instant, each on its own connection: with a limit of one,
    one moves and the other is refused, where both used to count zero before either committed."""
    settings.QUORUM_BREAK_GLASS_PER_DAY = 1
    model = glass()
    moves = [(3, "Production"), (2, "@champion")]
    outcomes: list[str] = []
    barrier = threading.Barrier(len(moves), timeout=60)

    def move(version: int, target: str) -> None:
        try:
            barrier.wait()
            break_glass_move(
                model=model, version=version, target=target, user=outsider, reason="same instant"
            )
            outcomes.append("moved")
        except Exception as error:  # noqa: BLE001 - the test asserts on every outcome
            outcomes.append(type(error).__name__)
        finally:
            connection.close()

    threads = [threading.Thread(target=move, args=pair) for pair in moves]
    for thread in threads:
        thread.start()
    join_all(threads, timeout=120, message="two break-glass moves at the same instant")

    assert sorted(outcomes) == ["BreakGlassLimit", "moved"], outcomes
    assert TransitionRequest.objects.filter(kind=RequestKind.BREAK_GLASS).count() == 1


def test_api_breaks_glass_and_answers_refusals_with_their_status(glass, outsider, lead, client):
    model = glass()

    def post(user, **body):
        headers = {"Authorization": f"Bearer {token_create(user=user, name='t')[1]}"}
        return client.post(
            "/api/v1/break-glass", body, content_type="application/json", headers=headers
        )

    refused = post(lead, model=model, version=3, target="Production", reason="x")
    assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
    no_reason = post(outsider, model=model, version=3, target="Production", reason="")
    assert no_reason.status_code == 400 and no_reason.json()["error"] == "comment_required"
    missing = post(outsider, model=model, version=3, target="Production")
    assert missing.status_code == 400
    made = post(outsider, model=model, version=3, target="Production", reason="outage")
    assert made.status_code == 201, made.content
    assert (made.json()["kind"], made.json()["decision"]) == ("break_glass", "approved")


def model_page(client, model: str) -> str:
    return client.get(reverse("registry:model_detail", args=[model])).content.decode()


def break_glass_form(page: str) -> str:
    """The model page's break-glass form, from its <details> to its end."""
    start = page.index('<details class="break-glass-form"')
    return page[start : page.index("</details>", start)]


def confirmation_fields(page: str) -> dict[str, str]:
    """What the confirmation's form sends back, as its hidden fields carry it."""
    fields = re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', page)
    return {name: html.unescape(value) for name, value in fields}


def ask(client, model: str, version: str, target: str, reason: str = "INC-4411", **options):
    """Sends the model page's break-glass form: the confirmation, or a refusal's redirect."""
    url = reverse("reviews:break_glass", args=[model])
    return client.post(url, {"version": version, "target": target, "reason": reason}, **options)


def answer(client, model: str, confirmation, step: str, **options):
    """Presses "Confirm break glass" (`step` "confirm") or "Back" on `confirmation`."""
    fields = confirmation_fields(confirmation.content.decode())
    url = reverse("reviews:break_glass_confirm", args=[model])
    return client.post(url, {**fields, "step": step}, **options)


def test_page_form_asks_to_confirm_then_moves_and_the_staff_report_lists_it(
    glass, outsider, admin_user, client
):
    model = glass()
    client.force_login(outsider)
    page = model_page(client, model)
    assert 'id="break-glass"' in page and '<option value="Production">' in page
    url = reverse("reviews:break_glass", args=[model])
    confirm = reverse("reviews:break_glass_confirm", args=[model])
    assert client.get(url).status_code == 405 and client.get(confirm).status_code == 405
    no_reason = client.post(url, {"version": "3", "target": "Production"}, follow=True)
    assert "the reason is required" in no_reason.content.decode()

    asked = ask(client, model, "3", "Production", "outage")
    assert asked.status_code == 200
    assert not TransitionRequest.objects.exists()
    moved = answer(client, model, asked, "confirm")
    move = TransitionRequest.objects.get(kind=RequestKind.BREAK_GLASS)
    assert moved.status_code == 302 and moved.url == reverse(
        "reviews:request_detail", args=[move.pk]
    )
    assert (move.version.version, move.target, move.comment) == (3, "Production", "outage")
    detail = client.get(moved.url).content.decode()
    assert "break glass" in detail and "the reason is quoted below" in detail and "outage" in detail

    report = reverse("reviews:break_glass_report")
    assert client.get(report).status_code == 403  # staff only
    client.force_login(admin_user)
    listed = client.get(report).content.decode()
    assert f"#{move.pk}</a>" in listed and "outage" in listed and "outsider" in listed


def test_a_refused_form_comes_back_open_with_what_was_typed(glass, outsider, client):
    model = glass()
    client.force_login(outsider)

    refused = ask(client, model, "2", "@champion", "   ")  # neither the first option

    back = reverse("registry:model_detail", args=[model])
    assert refused.status_code == 302 and refused.url == back + "#break-glass"
    page = client.get(back).content.decode()
    assert "the reason is required" in page
    form = break_glass_form(page)
    assert form.startswith('<details class="break-glass-form" id="break-glass" open>')
    assert '<option value="2" selected>v2</option>' in form
    assert '<option value="@champion" selected>@champion</option>' in form
    assert '<option value="3">v3</option>' in form
    assert '<option value="Production">Production</option>' in form
    assert re.search(r"<textarea [^>]*>\n   </textarea>", form)
    assert not TransitionRequest.objects.exists()
    # Kept for one page view: the next one shows the form as new.
    again = break_glass_form(model_page(client, model))
    assert again.startswith('<details class="break-glass-form" id="break-glass">')
    assert " selected" not in again


def test_the_confirmation_names_the_move_and_what_it_replaces(glass, outsider, client):
    model = glass()
    client.force_login(outsider)
    reason = "v1 approves every payment\nINC-4411 <b>now</b>"

    asked = ask(client, model, "3", "Production", reason)

    page = asked.content.decode()
    assert asked.status_code == 200
    assert re.search(rf"Move {model} <a [^>]*>v3</a> → Production now, replacing v1</h2>", page)
    assert "v1 approves every payment<br>INC-4411 &lt;b&gt;now&lt;/b&gt;" in page
    assert "Confirm break glass</button>" in page and "Back</button>" in page
    assert confirmation_fields(page) | {"csrfmiddlewaretoken": ""} == {
        "csrfmiddlewaretoken": "",
        "version": "3",
        "target": "Production",
        "reason": reason,
        "holders": "1",
    }
    champion = ask(client, model, "2", "@champion")
    assert "v2</a> → @champion now; nothing holds @champion now</h2>" in champion.content.decode()
    # Asking moved nothing: no request, no audit event, v1 still the one in Production.
    assert not TransitionRequest.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="break_glass").exists()
    production = RegisteredModel.objects.get(name=model).versions.filter(stage="Production")
    assert list(production.values_list("version", flat=True)) == [1]


def test_back_returns_to_the_form_with_the_values(glass, outsider, client):
    model = glass()
    client.force_login(outsider)
    asked = ask(client, model, "2", "@champion")

    back = answer(client, model, asked, "back")

    assert back.status_code == 302 and back.url.endswith("#break-glass")
    form = break_glass_form(model_page(client, model))
    assert ' id="break-glass" open>' in form
    assert '<option value="2" selected>' in form and '<option value="@champion" selected>' in form
    assert "\nINC-4411</textarea>" in form
    assert not TransitionRequest.objects.exists()


def test_a_refusal_at_confirm_comes_back_with_the_values(glass, outsider, client, settings):
    model = glass()
    client.force_login(outsider)
    asked = ask(client, model, "3", "Production")
    settings.QUORUM_BREAK_GLASS_PER_DAY = 0  # used up meanwhile

    refused = answer(client, model, asked, "confirm", follow=True)

    page = refused.content.decode()
    assert "QUORUM_BREAK_GLASS_PER_DAY=0" in page
    form = break_glass_form(page)
    assert ' id="break-glass" open>' in form and '<option value="3" selected>' in form
    assert "\nINC-4411</textarea>" in form
    assert not TransitionRequest.objects.exists()


def test_a_holder_changed_since_the_confirmation_is_confirmed_again(glass, outsider, client):
    model = glass()
    client.force_login(outsider)
    asked = ask(client, model, "3", "Production")
    # What a sync records when someone put v2 into Production meanwhile.
    RegisteredModel.objects.get(name=model).versions.filter(version=2).update(stage="Production")

    again = answer(client, model, asked, "confirm")

    page = again.content.decode()
    assert again.status_code == 409 and "changed since the confirmation was shown" in page
    assert "→ Production now, replacing v2 and v1</h2>" in page
    assert not TransitionRequest.objects.exists()
    moved = answer(client, model, again, "confirm")
    assert moved.status_code == 302
    assert TransitionRequest.objects.get(kind=RequestKind.BREAK_GLASS).baseline.version == 2


def test_members_of_no_break_glass_group_see_no_form(glass, requester, client):
    model = glass()
    client.force_login(requester)
    page = client.get(reverse("registry:model_detail", args=[model])).content.decode()
    assert 'id="break-glass"' not in page
    client.logout()
    for step in ("break_glass", "break_glass_confirm"):
        anonymous = client.post(reverse(f"reviews:{step}", args=[model]), {"reason": "x"})
        assert anonymous.status_code == 302 and "/login" in anonymous.url
