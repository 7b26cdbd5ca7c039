"""Model names that could pass for another: marked wherever a name is shown (real MLflow)."""

from __future__ import annotations

import html
import re

import pytest
from django.core import mail
from django.urls import reverse

from registry import names
from registry.sync import sync_registry
from reviews import notify
from reviews.audit import verification
from reviews.decisions import opening
from tests.mlflow_registry import register_with_metrics

pytestmark = pytest.mark.django_db

ZWSP = "\u200b"
RLO = "\u202e"


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("fraud-model", "fraud-model"),
        ("café-模型", "café-模型"),  # several scripts, none that look alike
        (f"fraud{ZWSP}-model", "fraud⟨U+200B⟩-model"),
        (f"ledoM{RLO}-fraud", "ledoM⟨U+202E⟩-fraud"),
        ("fraud\u00a0model", "fraud⟨U+00A0⟩model"),
        ("fraud\u2066-model\u2069", "fraud⟨U+2066⟩-model⟨U+2069⟩"),
        ("frаud-model", "frаud-model (⚠ mixes Cyrillic and Latin letters)"),  # Cyrillic а
    ],
)
def test_names_that_could_pass_for_another_are_spelled_out_in_text(name, text):
    assert names.as_text(name) == text


def test_a_marked_name_in_html_is_escaped_and_explains_itself():
    shown = str(names.as_html(f"<b>fraud{ZWSP}</b>"))

    assert "<b>" not in shown and "&lt;b&gt;fraud" in shown
    assert '<mark class="name-char">⟨U+200B⟩</mark>' in shown
    assert (
        'title="This name contains invisible or control characters (U+200B ZERO WIDTH SPACE)'
        in (shown)
    )
    assert str(names.as_html("<b>plain</b>")) == "&lt;b&gt;plain&lt;/b&gt;"


@pytest.fixture
def twins(mlflow_client, unique_name, policies):
    """Two models in MLflow whose names differ only by a zero-width space, both mirrored."""
    honest, twin = unique_name, unique_name.replace("-", f"{ZWSP}-", 1)
    for name in (honest, twin):
        register_with_metrics(mlflow_client, name, {"accuracy": 0.9, "f1": 0.9})
        sync_registry(model=name, client=mlflow_client)
    return honest, twin


def shown_text(response) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", response.content.decode()))


def test_pages_mark_the_twin_and_leave_the_honest_name_alone(client, twins, admin_user):
    honest, twin = twins
    marked = names.as_text(twin)
    client.force_login(admin_user)

    listing = client.get("/", {"q": honest.split("-")[-1]})
    model_page = client.get(reverse("registry:model_detail", args=[twin]))
    version_page = client.get(reverse("registry:version_detail", args=[twin, 1]))
    compare = client.get(reverse("registry:compare", args=[twin]), {"a": 1, "b": 1})

    for response in (listing, model_page, version_page, compare):
        assert response.status_code == 200
        page = response.content.decode()
        assert 'class="name-suspicious" title="This name contains invisible' in page
        assert marked in shown_text(response)
    assert f"<title>{marked} v1 · Quorum</title>" in version_page.content.decode()
    # The honest name is shown as it is, and links go to each model's own page.
    assert honest in shown_text(listing)
    assert reverse("registry:model_detail", args=[twin]) in listing.content.decode()


def test_a_request_on_the_twin_is_marked_in_the_inbox_request_page_audit_and_mail(
    client, twins, policies, admin_user, settings, mailoutbox, django_capture_on_commit_callbacks
):
    _, twin = twins
    marked = names.as_text(twin)
    for user in policies.values():
        user.email = f"{user.username}@example.com"
        user.save(update_fields=["email"])
    with django_capture_on_commit_callbacks(execute=False):
        request = opening.request_create(
            model=twin, version=1, target="Production", requester=policies["requester"]
        )
    client.force_login(admin_user)

    pages = [
        client.get(reverse("reviews:request_detail", args=[request.pk])),
        client.get(reverse("reviews:audit")),
    ]
    client.force_login(policies["lead"])  # an approver: the request awaits them
    pages.append(client.get(reverse("reviews:inbox")))

    for response in pages:
        assert response.status_code == 200
        assert marked in shown_text(response), response.request["PATH_INFO"]
        assert "name-suspicious" in response.content.decode()
    event = request.audit_events.get(action="request.created")
    message = notify.render(event, "review_needed")
    assert message["subject"] == f"[Quorum] {marked} v1 → Production needs your review"
    assert f"asks for {marked} v1 to go to Production" in message["text"]
    assert marked in html.unescape(message["html"])
    assert event.model_name == twin  # the record keeps the name as MLflow has it
    assert verification.verify().ok
    assert mail.outbox == []
