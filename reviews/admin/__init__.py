"""The Django admin: approver groups and their members, policies, requests, votes, the audit trail,
API tokens and the outbox of mail and webhook deliveries.

Every change made here goes through the same validation and services as the rest of Quorum and
is appended to the audit chain with the admin as actor. One module per concern; importing them
registers their admins.
"""

from . import outbox, people, policies, records  # noqa: F401
