"""The model page's break-glass form (reviews/web/views_break_glass.py), through a real MLflow and
a real worker: a confirmation naming the move before it is made, what was typed kept through a
refusal or "Back", a holder changed since the confirmation confirmed again, no form for those who
may not break glass, and the staff report."""

from __future__ import annotations

import html
import re

import pytest
from django.urls import reverse

from registry.models import RegisteredModel
from reviews.models import AuditEvent, RequestKind, TransitionRequest

pytestmark = pytest.mark.django_db


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
