"""MLflow webhook receiver (being written)."""

from django.http import HttpResponse


def mlflow_webhook(request):
    return HttpResponse(status=501)
