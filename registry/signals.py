"""Signals the mirror sends, so other apps can react without `registry` importing them."""

from django.dispatch import Signal

# Sent inside the sync's transaction with `changes`: the RegistryChange rows just written.
changes_observed = Signal()
