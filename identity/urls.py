"""/oidc/authenticate/ starts a provider sign-in, /oidc/callback/ is the redirect URI to
register at the provider."""

from mozilla_django_oidc.urls import urlpatterns

urlpatterns = [p for p in urlpatterns if p.name != "oidc_logout"]  # sign-out is identity.views
