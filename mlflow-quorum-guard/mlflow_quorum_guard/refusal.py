"""What a rule answers when it refuses a request: the message MLflow's client shows the caller."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Refusal:
    message: str
