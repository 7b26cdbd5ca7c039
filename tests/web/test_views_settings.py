"""The notification settings page (`reviews:notification_settings`): reminders turned off and
on; a login and a CSRF token needed."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from reviews.models import NotificationPreference

pytestmark = pytest.mark.django_db


def test_the_settings_page_turns_reminders_off_and_on(scientist1, client):
    url = reverse("reviews:notification_settings")
    client.force_login(scientist1)

    page = client.get(url)
    assert page.status_code == 200
    assert 'name="reminders"' in page.content.decode() and "checked" in page.content.decode()

    response = client.post(url, {}, follow=True)  # an unticked box is not sent
    assert "Reminder emails are off." in response.content.decode()
    assert NotificationPreference.objects.get(user=scientist1).reminders is False

    client.post(url, {"reminders": "on"})
    assert NotificationPreference.objects.get(user=scientist1).reminders is True


def test_the_settings_page_needs_a_login_and_a_csrf_token(scientist1):
    url = reverse("reviews:notification_settings")

    anonymous = Client().post(url, {})
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/accounts/login/")

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(scientist1)
    assert strict.post(url, {}).status_code == 403
    assert strict.put(url).status_code in (403, 405)
    assert not NotificationPreference.objects.exists()
