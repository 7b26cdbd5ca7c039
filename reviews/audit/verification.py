"""Checking the audit chain: `verify` recomputes every hash, so an edited, deleted or inserted
row breaks the chain at the first sequence number it touched.

Recomputing a long chain takes seconds, so pages do not: the head keeps a verified checkpoint
that the reconciler extends (`extend_verified_checkpoint`) and `verify_audit` resets, and
`chain_status` checks only the events after it, a bounded number of them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Literal

from django.db.models import Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from ..models import AuditEvent, AuditHead
from .chain import GENESIS, chain_hash, event_content

logger = logging.getLogger(__name__)

VERIFY_BATCH = 2000


@dataclass(frozen=True)
class Verification:
    """What one walk along the chain found.

    `sequence` and `hash` are the last event the walk found whole (where a checkpoint may be
    set); `read` counts the event rows it loaded.
    """

    ok: bool
    checked: int
    broken_at: int | None = None
    problem: str = ""
    sequence: int = 0
    hash: str = GENESIS
    read: int = 0

    def __str__(self) -> str:
        if self.ok:
            return f"audit chain intact: {self.checked} events verified"
        return f"audit chain broken at sequence {self.broken_at}: {self.problem}"


def _events(first: int, last: int) -> Iterator[AuditEvent]:
    """Events `first`..`last` in sequence order, read in batches of a bounded size."""
    while first <= last:
        wanted = AuditEvent.objects.filter(sequence__gte=first, sequence__lte=last)
        batch = list(wanted.order_by("sequence")[:VERIFY_BATCH])
        if not batch:
            return
        yield from batch
        first = batch[-1].sequence + 1


def _walk(
    *, after: int, after_hash: str, head: AuditHead, limit: int | None = None
) -> Verification:
    """Recomputes the events after `after` (whose hash was `after_hash`) up to `head`, or `limit`
    events of them; names the first sequence that does not hold.

    `head` is read before the walk: events appended while it runs are the next walk's, so a busy
    chain never looks cut short. Only a walk that reaches the head checks that no event lies
    beyond the head as it is then.
    """
    last = head.sequence if limit is None else min(head.sequence, after + limit)
    prev_hash, expected, read = after_hash, after + 1, 0

    def result(broken_at: int | None = None, problem: str = "") -> Verification:
        return Verification(
            ok=broken_at is None,
            checked=expected - 1 - after,
            broken_at=broken_at,
            problem=problem,
            sequence=expected - 1,
            hash=prev_hash,
            read=read,
        )

    events = _events(max(after, 1), last)
    if after:
        # The checkpoint's own event must still be there with the hash it was verified with: a
        # chain rewritten before the checkpoint (every hash recomputed) shows here.
        anchor = next(events, None)
        read += anchor is not None
        if anchor is None or anchor.sequence != after:
            return result(after, f"event {after}, verified earlier, is missing")
        if anchor.hash != after_hash:
            return result(after, f"event {after} no longer has the hash it was verified with")
    for event in events:
        read += 1
        if event.sequence != expected:
            return result(expected, f"event {expected} is missing (next is {event.sequence})")
        if event.prev_hash != prev_hash:
            return result(event.sequence, "previous hash does not match")
        if chain_hash(prev_hash, event_content(event)) != event.hash:
            return result(event.sequence, "content does not match its hash")
        prev_hash, expected = event.hash, expected + 1
    if expected - 1 < last:
        return result(
            expected,
            f"the chain head says {head.sequence} events; events after {expected - 1} were removed",
        )
    if expected - 1 == head.sequence:
        if prev_hash != head.hash:
            return result(expected - 1, "the chain head's hash does not match this event")
        if (beyond := _first_beyond_head()) is not None:
            return result(expected, f"event {beyond} lies beyond the chain head")
    return result()


def _first_beyond_head() -> int | None:
    """The first event with a sequence above the head's, as one statement: it sees the head and
    the events at one instant, and an append moves both at once, so a concurrent append is never
    taken for an event written around the head."""
    now_at = AuditHead.objects.filter(name="audit").values("sequence")
    beyond = AuditEvent.objects.filter(sequence__gt=Coalesce(Subquery(now_at), 0))
    return beyond.order_by("sequence").values_list("sequence", flat=True).first()


def _head() -> AuditHead:
    """The chain head as it is now; an unsaved empty one before the first event."""
    return AuditHead.objects.filter(name="audit").first() or AuditHead(name="audit")


def verify(*, checkpoint: bool = False) -> Verification:
    """Recomputes the chain from the first event; names the first sequence that does not hold.

    With `checkpoint`, records the outcome on the chain head: where the chain was found whole
    (the new verified checkpoint, which may move back) and any break, so the audit page shows it.
    """
    head = _head()
    result = _walk(after=0, after_hash=GENESIS, head=head)
    if checkpoint:
        _checkpoint_save(result, guard={})
    return result


# Events one reconciler run verifies at most (a few seconds' work): the first run after an upgrade
# catches up with a long history over several runs rather than outlasting the job's timeout.
EXTEND_LIMIT = 100_000


def extend_verified_checkpoint(*, limit: int = EXTEND_LIMIT) -> Verification:
    """Verifies the events appended since the verified checkpoint (`limit` of them at most) and
    moves the checkpoint to the last one.

    Run by the periodic reconciler, so the audit page has only the last minute's events to check.
    A break is recorded on the head (and logged) and stays until a verification finds that link
    whole again. Events before the checkpoint are not read again: edits to them are found by the
    full walk of `manage.py verify_audit`, which records what it finds the same way.
    """
    head = _head()
    result = _walk(
        after=head.verified_sequence, after_hash=head.verified_hash, head=head, limit=limit
    )
    # Guarded: a `verify_audit` that recorded something meanwhile is newer than this walk.
    _checkpoint_save(
        result,
        guard={
            "verified_sequence": head.verified_sequence,
            "verified_hash": head.verified_hash,
            "broken_at": head.broken_at,
        },
    )
    if result.broken_at != head.broken_at:
        if result.ok:
            logger.warning("audit chain whole again: verified up to %s", result.sequence)
        else:
            logger.error("%s; run manage.py verify_audit", result)
    return result


def _checkpoint_save(result: Verification, *, guard: dict) -> None:
    AuditHead.objects.filter(name="audit", **guard).update(
        verified_sequence=result.sequence,
        verified_hash=result.hash,
        verified_at=timezone.now(),
        broken_at=result.broken_at,
        broken_problem=result.problem,
    )


# How many events past the checkpoint the audit page recomputes on a view: the reconciler leaves
# about a minute's worth, and each one costs some 30 microseconds.
PAGE_VERIFY_LIMIT = 500


@dataclass(frozen=True)
class ChainStatus:
    """What the audit pages say about the chain, from the checkpoint and a bounded check.

    `state` is "intact" (every event verified: those up to the checkpoint when it was set, the
    rest by this check), "broken", or "behind" (more than the bound of events are newer than
    the checkpoint: they are not verified here). `read` counts the event rows this check loaded.
    """

    state: Literal["intact", "broken", "behind"]
    events: int
    verified_sequence: int
    verified_at: datetime | None
    checked: int = 0
    broken_at: int | None = None
    problem: str = ""
    read: int = 0

    @property
    def ok(self) -> bool:
        return self.state == "intact"

    @property
    def unverified(self) -> int:
        return self.events - self.verified_sequence

    def __str__(self) -> str:
        if self.state == "broken":
            return f"audit chain broken at sequence {self.broken_at}: {self.problem}"
        if self.state == "behind":
            return (
                f"audit chain verified up to sequence {self.verified_sequence}; "
                f"{self.unverified} newer events not yet verified"
            )
        return f"audit chain intact: {self.events} events verified"


def chain_status(*, limit: int = PAGE_VERIFY_LIMIT) -> ChainStatus:
    """The chain's state for a page, reading at most `limit` + 1 events; writes nothing.

    A break that the reconciler or `verify_audit` recorded is shown as found. Otherwise the
    events after the checkpoint are recomputed when there are at most `limit` of them; when
    there are more, only the link at the checkpoint is checked, and the status says how many
    are not verified yet.
    """
    head = _head()
    status = partial(
        ChainStatus,
        events=head.sequence,
        verified_sequence=head.verified_sequence,
        verified_at=head.verified_at,
    )
    if head.broken_at is not None:
        return status("broken", broken_at=head.broken_at, problem=head.broken_problem)
    behind = head.sequence - head.verified_sequence > limit
    result = _walk(
        after=head.verified_sequence,
        after_hash=head.verified_hash,
        head=head,
        limit=1 if behind else None,
    )
    if not result.ok:
        return status(
            "broken", broken_at=result.broken_at, problem=result.problem, read=result.read
        )
    return status("behind" if behind else "intact", checked=result.checked, read=result.read)
