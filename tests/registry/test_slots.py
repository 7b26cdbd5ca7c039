"""The registry's pages render on their own: other apps fill their slots (`registry.slots`), and no
registry template loads another app's template library."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.template.backends.django import get_installed_libraries

from registry import slots
from tests.factories import make_model, make_user, make_version

REGISTRY_TEMPLATES = Path(settings.BASE_DIR) / "quorum" / "templates" / "registry"
LOAD = re.compile(r"{%\s*load\s+(.*?)\s*%}")


def test_no_registry_template_loads_a_library_of_another_app():
    libraries = get_installed_libraries()
    loaded = {
        (path.name, name)
        for path in REGISTRY_TEMPLATES.glob("*.html")
        for names in LOAD.findall(path.read_text())
        for name in names.split()
    }

    assert loaded, "no {% load %} found: has the templates folder moved?"
    foreign = {
        (template, name)
        for template, name in loaded
        if not libraries[name].startswith(("registry.", "django."))
    }
    assert foreign == set()


def test_the_review_app_fills_each_slot():
    for name in slots.SLOTS:
        assert slots.templates(name) == [f"reviews/slots/{name}.html"]


def test_a_slot_the_registry_does_not_have_is_refused():
    with pytest.raises(ValueError, match="no slot 'sidebar'"):
        slots.fill("sidebar", "reviews/slots/sidebar.html")


@pytest.fixture
def without_the_review_app(monkeypatch):
    """The slots as they are when no other app fills them."""
    monkeypatch.setattr(slots, "_filled", {name: [] for name in slots.SLOTS})


@pytest.mark.django_db
def test_registry_pages_render_with_their_slots_empty(client, without_the_review_app, policies):
    model = make_model("fraud")
    make_version(model, 1, metrics={"accuracy": 0.9})
    make_version(model, 2, metrics={"accuracy": 0.95})
    client.force_login(make_user("reviewer"))

    pages = {
        "/": "fraud",
        "/models/fraud/": "Versions",
        "/models/fraud/versions/2/": "Compare with",
        "/models/fraud/compare?a=2&b=1": "accuracy",
    }
    for path, expected in pages.items():
        response = client.get(path)
        body = response.content.decode()
        assert response.status_code == 200, path
        assert expected in body, path
        assert 'id="request-promotion"' not in body and "request_form.js" not in body, path
        assert 'id="requests"' not in body, path


@pytest.mark.django_db
def test_registry_pages_show_what_the_review_app_puts_in_their_slots(client, policies):
    model = make_model("fraud")
    make_version(model, 1, metrics={"accuracy": 0.9, "f1": 0.9})
    client.force_login(make_user("reviewer"))

    version_page = client.get("/models/fraud/versions/1/").content.decode()
    model_page = client.get("/models/fraud/").content.decode()

    assert 'id="request-promotion"' in version_page and "request_form.js" in version_page
    assert 'id="requests"' in model_page and 'id="request-promotion"' not in model_page
