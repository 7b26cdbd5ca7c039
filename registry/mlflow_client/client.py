"""`RegistryClient`: the one object the rest of Quorum talks to MLflow through."""

from __future__ import annotations

from dataclasses import dataclass

from .content import ContentReading
from .evidence import EvidenceReading
from .probes import Probes
from .reading import Reading
from .seeding import Seeding
from .webhooks import Webhooks
from .writing import Writing


@dataclass
class RegistryClient(Reading, EvidenceReading, ContentReading, Writing, Seeding, Webhooks, Probes):
    """A thin, call-counting wrapper around `MlflowClient` that speaks in dataclasses.

    Each part lives in the module of its concern; they share one `Connection`, so `calls` counts
    every call whichever part made it.
    """
