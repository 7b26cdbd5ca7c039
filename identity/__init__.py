"""Single sign-on: people sign in with the organisation's OpenID Connect provider, approver groups
follow its group claim, and CI authenticates to the API with workload identity tokens."""
