"""Signals the mirror sends, so other apps can react without `registry` importing them."""

from django.dispatch import Signal

# Sent inside the sync's transaction with `changes`: the RegistryChange rows just written.
changes_observed = Signal()

# Sent after every sync, successful or not, once its `SyncRun` row holds the outcome (`sync_run`).
# Sent outside the sync's own transaction: a failed sync has rolled back everything else.
sync_finished = Signal()
