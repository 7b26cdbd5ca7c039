"""Registry pages (being written)."""

from django.http import HttpResponse


def model_list(request):
    return HttpResponse("models")


model_detail = version_detail = compare = model_list
