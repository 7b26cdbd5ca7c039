"""Signals of the review engine."""

from django.dispatch import Signal

# Sent by `reviews.audit.chain.record` with `event`, inside the transaction that appended it:
# receivers that act outside the database (mail, webhooks) must defer to transaction.on_commit.
event_recorded = Signal()
