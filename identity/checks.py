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
    return errors + ci_rules_naming_no_caller()


def ci_rules_naming_no_caller() -> list[Error]:
    """A CI rule that pins no caller claim to an exact value trusts every token of its issuer:
    with GitHub's, every repository on GitHub."""
    try:
        issuers = workload.trusted_issuers()
    except ImproperlyConfigured:
        return []  # identity.E003 says why
    caller_claims = ", ".join(workload.CALLER_CLAIMS)
    return [
        Error(
            f"QUORUM_CI_ISSUERS: the rule for service user {rule.user!r} of {issuer.issuer} "
            f"pins none of {caller_claims} to an exact value (its claims: {rule.claims}), so "
            f"any repository or project with a token from that issuer could act as "
            f"{rule.user!r}. The rule is ignored.",
            hint="Pin the caller without wildcards: GitHub's repository (or repository_id), "
            "GitLab's project_path (or project_id), or sub; globs may narrow it further "
            '(environment, "ref": "refs/tags/v*").',
            id="identity.E004",
        )
        for issuer in issuers.values()
        for rule in issuer.users
        if not rule.names_its_caller
    ]
