"""URL root: registry pages, reviews, the MLflow webhook receiver, auth, admin, RQ dashboard."""

from csp.constants import SELF, UNSAFE_INLINE
from csp.decorators import csp_replace
from django.contrib import admin
from django.http import HttpRequest, HttpResponsePermanentRedirect
from django.templatetags.static import static
from django.urls import include, path
from django_rq.urls import get_admin_urlpatterns, get_api_urlpatterns

from identity.views import sign_out
from reviews.api import api

# django_rq's dashboard pages carry inline <style> blocks and style attributes: allowed on them,
# for staff, and nowhere else. Scripts stay this origin's only (quorum/templates/django_rq/).
dashboard_styles = csp_replace({"style-src": [SELF, UNSAFE_INLINE]})
dashboard = get_api_urlpatterns() + get_admin_urlpatterns(view_wrapper=dashboard_styles)


def favicon(request: HttpRequest) -> HttpResponsePermanentRedirect:
    # Browsers ask for /favicon.ico on pages that name no icon (the admin's, the API docs').
    return HttpResponsePermanentRedirect(static("favicon.svg"))


urlpatterns = [
    path("favicon.ico", favicon),
    # Before Django's own: signing out also ends a provider's session (identity/views.py).
    path("accounts/logout/", sign_out, name="logout"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("oidc/", include("identity.urls")),
    path("admin/django_rq/", include((dashboard, "django_rq"))),
    path("admin/", admin.site.urls),
    path("api/v1/", api.urls),
    path("", include("reviews.web.urls")),
    path("", include("registry.urls")),
]
