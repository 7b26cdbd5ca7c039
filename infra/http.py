"""Request types that say who is signed in, for views and endpoints that only users reach.

Django types `request.user` as a user or `AnonymousUser`. Behind `login_required` (and the API's
bearer token) it is always a signed-in `User`; annotating such views with
`AuthenticatedHttpRequest` says so once, instead of narrowing `request.user` in every view.
"""

from __future__ import annotations

from django.contrib.auth.models import User
from django.http import HttpRequest


class AuthenticatedHttpRequest(HttpRequest):
    """A request that `login_required` let through: `user` is never `AnonymousUser`."""

    user: User
