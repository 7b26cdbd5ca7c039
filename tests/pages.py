"""Reading Quorum's pages in view tests: a signed-in client and whom a client is signed in as,
the text a user sees, the page as sent and its chart data, the messages shown, and the request
page's URLs. And speaking to its REST API in API tests: a client with a user's bearer token, the
shape of a refusal, and what a listed request holds. And filling in the Django admin's forms: what
a page would post back unchanged, and the errors it shows again."""

from __future__ import annotations

import html
import json
import re

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.forms import MultiWidget
from django.urls import reverse

from reviews.api.auth import token_create


def login(client, user):
    client.force_login(user)
    return client


def signed_in_user(client):
    """Whom the test client's session is signed in as; None when nobody is."""
    user_id = client.session.get("_auth_user_id")
    return get_user_model().objects.get(pk=user_id) if user_id else None


def text_of(response) -> str:
    """The page's visible text: scripts dropped, tags turned into spaces, whitespace collapsed,
    entities decoded."""
    body = response.content.decode()
    body = re.sub(r"<script.*?</script>", " ", body, flags=re.S)
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body)))


def page_source(response) -> str:
    """The page as sent, markup and all."""
    return response.content.decode()


def chart_data(response) -> dict:
    """The data a page embeds for its charts (`json_script`, id `chart-data`)."""
    match = re.search(
        r'<script id="chart-data" type="application/json">(.*?)</script>', page_source(response)
    )
    assert match, "the page embeds no chart data"
    return json.loads(match.group(1))


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def detail_url(request) -> str:
    return reverse("reviews:request_detail", args=[request.pk])


def action_url(name: str, request) -> str:
    return reverse(f"reviews:{name}", args=[request.pk])


def request_url(name: str, version: int) -> str:
    """Where the promotion form for model `name`, `version` posts."""
    return reverse("reviews:request_new", args=[name, version])


class Api:
    """The test client speaking JSON with one user's bearer token."""

    def __init__(self, client, user=None, token: str | None = None):
        self.client = client
        self.token = token if token is not None else token_create(user=user, name="test")[1]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def get(self, path, **params):
        return self.client.get("/api/v1" + path, params, headers=self.headers)

    def post(self, path, body=None, *, raw: str | None = None):
        data = raw if raw is not None else json.dumps(body if body is not None else {})
        return self.client.post(
            "/api/v1" + path, data, content_type="application/json", headers=self.headers
        )


def create(api, version=2, target="Production", **extra):
    """POST /requests for `fraud-detector` (`tests.factories.make_fraud_detector`) as `api`."""
    return api.post(
        "/requests",
        {"model": "fraud-detector", "version": version, "target": target, **extra},
    )


def refused(response, status: int, code: str) -> str:
    """Asserts that the API refused with `status` and `code` in its shape; returns the detail."""
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error", "detail"} and body["error"] == code, body
    assert body["detail"]
    return body["detail"]


# What each item of `GET /requests` holds unless `fields=full` asks for more.
SUMMARY_FIELDS = {
    "id",
    "status",
    "approved_by",
    "model",
    "version",
    "target",
    "requester",
    "decision",
    "execution",
    "requirements",
    "created_at",
    "expires_at",
    "url",
}


# -- the Django admin's forms ------------------------------------------------------------------

# What the admin says when a person counts in two of the standard Production policy's groups.
OVERLAP_WARNING = (
    "Policy 'production': ml-leads and data-science share lead. A person counts for one group "
    "only, so its sign-offs need 3 different people."
)


def page_data(response) -> dict:
    """What the browser would post back from an admin form page, unchanged."""
    forms = [response.context["adminform"].form]
    for inline in response.context["inline_admin_formsets"]:
        forms.append(inline.formset.management_form)
        forms.extend(inline.formset.forms)
    data = {}
    for form in forms:
        for name in form.fields:
            value = form[name].value()
            if value is None or value is False:
                continue
            widget = form.fields[name].widget
            if isinstance(widget, MultiWidget):
                parts = widget.decompress(value)
                assert parts is not None, f"{name}: a split field decompresses to its parts"
                for index, part in enumerate(parts):
                    data[f"{form.add_prefix(name)}_{index}"] = widget.widgets[index].format_value(
                        part
                    )
                continue
            data[form.add_prefix(name)] = "on" if value is True else value
    return data


def errors_of(response) -> list[str]:
    """The errors an admin form page shows again, its inlines' included."""
    assert response.status_code == 200, "an invalid form is shown again, not saved"
    form = response.context["adminform"].form
    errors = [error for field_errors in form.errors.values() for error in field_errors]
    for inline in response.context["inline_admin_formsets"]:
        errors.extend(inline.formset.non_form_errors())
        for row in inline.formset.forms:
            errors.extend(error for field_errors in row.errors.values() for error in field_errors)
    return errors


def group_id(name: str) -> int:
    return Group.objects.get(name=name).pk


def shown_messages(response) -> list[str]:
    """The messages a page shows (`messages_of` without its allowance for a response with no
    context: here that fails)."""
    return [str(message) for message in response.context["messages"]]
