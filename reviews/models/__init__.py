"""Review domain models: approval policies, transition requests, votes and the audit chain.

One module per aggregate. Django finds the app's models through the names imported here, and the
rest of Quorum imports them from here too: `from reviews.models import TransitionRequest`.
"""

# Not sorted, on purpose: Django registers models in import order, which is the order of
# `get_models()` and of the content types and permissions a new database gets.
# isort: off
from .policies import (
    ApprovalPolicy,
    GateKind,
    OutOfBand,
    PolicyGate,
    PolicyRequester,
    PolicyRequirement,
)
from .requests import (
    COMMENT_MAX,
    OPEN_CONDITION,
    Attestation,
    Comment,
    Decision,
    Execution,
    RequestKind,
    TransitionRequest,
    TransitionRequestQuerySet,
    Vote,
    VoteChoice,
)
from .audit import AuditEvent, AuditEventManager, AuditHead
from .tokens import ApiToken
from .notifications import (
    Notification,
    NotificationKind,
    NotificationPreference,
    OutboxItem,
    OutboxState,
    WebhookDelivery,
)
from .guard import GuardProbe
from .reverts import OutOfBandRevert, RevertState
from .revocations import ProofRevocation, RevocationState

# isort: on

__all__ = [
    "COMMENT_MAX",
    "OPEN_CONDITION",
    "ApiToken",
    "ApprovalPolicy",
    "Attestation",
    "AuditEvent",
    "AuditEventManager",
    "AuditHead",
    "Comment",
    "Decision",
    "Execution",
    "GateKind",
    "GuardProbe",
    "Notification",
    "NotificationKind",
    "NotificationPreference",
    "OutOfBand",
    "OutOfBandRevert",
    "OutboxItem",
    "OutboxState",
    "PolicyGate",
    "PolicyRequester",
    "PolicyRequirement",
    "ProofRevocation",
    "RequestKind",
    "RevertState",
    "RevocationState",
    "TransitionRequest",
    "TransitionRequestQuerySet",
    "Vote",
    "VoteChoice",
    "WebhookDelivery",
]
