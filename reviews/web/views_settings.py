"""The settings page: a user turns reminder emails off (or on again), and sees whether the MLflow
registry is guarded (`reviews.execution.guard`).

Only reminders are optional. Mail about a user's own requests, and the mail that asks an approver
to review a new request, always go.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from infra.http import AuthenticatedHttpRequest

from ..models import GuardProbe, NotificationPreference


class NotificationSettingsForm(forms.ModelForm):
    class Meta:
        model = NotificationPreference
        fields = ["reminders"]
        labels = {"reminders": "Send me reminder emails"}


@login_required
@require_http_methods(["GET", "POST"])
def notification_settings(request: AuthenticatedHttpRequest) -> HttpResponse:
    preference = NotificationPreference.objects.filter(user=request.user).first()
    preference = preference or NotificationPreference(user=request.user)
    if request.method == "POST":
        form = NotificationSettingsForm(request.POST, instance=preference)
        if form.is_valid():
            form.save()
            state = "on" if form.instance.reminders else "off"
            messages.success(request, f"Reminder emails are {state}.")
            return redirect("reviews:notification_settings")
    else:
        form = NotificationSettingsForm(instance=preference)
    return render(
        request,
        "reviews/settings_notifications.html",
        {"form": form, "email": request.user.email, "guard_probe": GuardProbe.latest()},
    )
