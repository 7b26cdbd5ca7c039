"""What the sign-in page offers: the provider's button, and whether passwords are taken."""

from django.conf import settings


def sign_in_options(request) -> dict:
    return {
        "sso_provider_name": settings.OIDC_PROVIDER_NAME if settings.OIDC_ISSUER else "",
        "password_login": settings.QUORUM_PASSWORD_LOGIN,
    }
