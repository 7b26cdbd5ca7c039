"""Notifications: mail (who hears about what, and how each mail is sent exactly once), outgoing
webhooks, and the outbox both go through.

| audit event                       | mail          | to                                        |
| --------------------------------- | ------------- | ----------------------------------------- |
| request.created                   | review needed | every eligible approver but the requester |
| request.approved, .rejected,      | decided       | the requester and everyone who voted      |
|   .expired, .cancelled            |               |                                           |
| transition.done                   | done          | the requester                             |
| transition.failed (the last try)  | failed        | the requester and staff                   |
| notify.reminder (periodic job)    | reminder      | eligible approvers who have not voted and |
|                                   |               |   have not turned reminders off (a stale  |
|                                   |               |   approval is not a vote: see below)      |
| notify.escalation (periodic job)  | escalation    | staff, when no vote counts at half-life   |
| registry.out_of_band              | out of band   | staff                                     |
| out_of_band.reverted              | reverted      | staff                                     |
| out_of_band.revert_failed         | revert failed | staff                                     |
| registry.sync_failing             | sync failing  | staff                                     |

How a mail gets out, and only once:

1. `on_event_recorded` runs inside the transaction that appended the audit event and writes one
   `Notification` row per recipient (the outbox). The row exists exactly when the event does, and
   a unique (key, recipient) constraint means a recipient gets one row per event (one per request
   for reminders and escalations).
2. After commit, `send_event_mail(event_id)` is queued on the `notifications` queue. If Redis is
   down the enqueue is only logged: the rows are in the database.
3. A worker claims each row with a conditional UPDATE (`claimed_until`), sends it, and marks it
   sent. A retried or duplicated job finds it sent and skips it; two workers never both claim it.
   A failed send is recorded and the job raises, so RQ retries it with backoff.
4. `sweep_outbox`, run every minute by the cron scheduler, sends whatever is still pending (the
   enqueue was lost, a worker died holding a claim, the retries ran out).

"Has voted" means has a current vote: an approval that went stale (the evidence changed) no longer
counts, and its voter is reminded like anyone who has yet to vote.

A worker that dies after the SMTP server accepted a mail but before it marked the row sent sends
that mail again once the claim lapses: at least once, and once in every other case.

The package, one concern a module:

- `recipients`: which event makes which kind of mail, and who gets it;
- `events`: an audit event's mail written to the outbox, and its job queued after commit;
- `sending`: claiming, sending and skipping outbox rows, and the sweep;
- `rendering`: what a mail says (subject, text, HTML);
- `reminders`: the reminder and escalation events the periodic job records;
- `backends`: the demo's mail transport, one `.eml` file per mail;
- `outbox`: what mail and outgoing webhooks share: claims, results, backoff, enqueueing;
- `webhooks_out`: outgoing webhooks, signed JSON for decisions and results.

Absolute links to Quorum's pages (`reviews.links`) are shared with the API and the proofs, so
they live beside the package, not in it.

This module holds the two jobs RQ runs by name. A queued job stores its function's dotted path
in Redis (`reviews.notify.send_event_mail`, `reviews.notify.periodic`), and jobs outlive
releases, so those paths stay here. Everything else referenced from outside as
`reviews.notify.<name>` (settings, signals, jobs queued before the package existed) is re-exported.
"""

from __future__ import annotations

import logging

from ..models import Notification
from . import webhooks_out
from .backends import EmlFileBackend
from .events import enqueue_mail, on_event_recorded, outbox_mail
from .outbox import QUEUE as QUEUE  # the queue mail jobs run on
from .outbox import send_for_event
from .recipients import recipients
from .reminders import remind_and_escalate
from .rendering import render
from .sending import send, sweep_outbox

__all__ = [
    "QUEUE",
    "EmlFileBackend",
    "enqueue_mail",
    "on_event_recorded",
    "outbox_mail",
    "periodic",
    "recipients",
    "remind_and_escalate",
    "render",
    "send",
    "send_event_mail",
    "sweep_outbox",
]

logger = logging.getLogger(__name__)


def send_event_mail(event_id: int) -> str:
    """RQ job: sends the event's pending mail. Safe to run twice; raises if some could not go."""
    return send_for_event(Notification, event_id, send)


def periodic() -> dict:
    """Cron job: reminders, escalations, then whatever mail and webhooks are still pending."""
    summary = remind_and_escalate()
    result = {
        "reminded": len(summary["reminded"]),
        "escalated": len(summary["escalated"]),
        "mail_swept": sweep_outbox(),
        "webhooks_swept": webhooks_out.sweep(),
    }
    if any(result.values()):
        logger.info("notifications: %s", result)
    return result
