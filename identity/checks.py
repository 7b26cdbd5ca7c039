"""`manage.py check` (and every start) refuses a half-configured provider or CI issuer list."""

from django.conf import settings
from django.core.checks import Error, register
from django.core.exceptions import ImproperlyConfigured

from . import mapping, workload


@register()
def sso_settings(app_configs, **kwargs):
    errors = []
    if settings.OIDC_ISSUER:
        for name, value in (
            ("OIDC_CLIENT_ID", settings.OIDC_RP_CLIENT_ID),
            ("OIDC_CLIENT_SECRET", settings.OIDC_RP_CLIENT_SECRET),
        ):
            if not value:
                errors.append(Error(f"OIDC_ISSUER is set but {name} is not.", id="identity.E001"))
        if "openid" not in settings.OIDC_RP_SCOPES.split():
            errors.append(Error("OIDC_SCOPES must include 'openid'.", id="identity.E002"))
    for reader in (mapping.group_rules, mapping.staff_patterns, workload.trusted_issuers):
        try:
            reader()
        except ImproperlyConfigured as error:
            errors.append(Error(str(error), id="identity.E003"))
    return errors
