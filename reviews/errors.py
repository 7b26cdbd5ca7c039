"""Domain errors of the review engine, each with a message a user can act on.

`code` is stable (the REST API returns it); `status` is the HTTP status an API answers with, and
the pages derive their answer from it too (`reviews.web`).
"""

from __future__ import annotations

from dataclasses import dataclass


class QuorumError(Exception):
    """Base of every refusal the review engine explains to a user."""

    code = "refused"
    status = 400


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a policy file or policy: where, and what.

    `location` is the path to the value as data (`("policies", 0, "require", 1, "group")`),
    empty for the file or policy as a whole; `str()` writes it the way a person finds it in the
    file, `policies[0].require[1].group: message`, for the places that show it.
    """

    location: tuple[str | int, ...]
    message: str

    @property
    def place(self) -> str:
        written = ""
        for part in self.location:
            if isinstance(part, int):
                written += f"[{part}]"
            else:
                written += f".{part}" if written else str(part)
        return written

    def within(self, *prefix: str | int) -> Problem | None:
        """The problem relative to `prefix` when it lies there (`within("policies", 2)`), else
        None."""
        if self.location[: len(prefix)] != prefix:
            return None
        return Problem(self.location[len(prefix) :], self.message)

    def __str__(self) -> str:
        return f"{self.place}: {self.message}" if self.location else self.message


class PolicyInvalid(QuorumError):
    """A policy file or form failed validation; `problems` lists each `Problem`."""

    code = "policy_invalid"

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(problem) for problem in problems))


class NoPolicy(QuorumError):
    """No policy covers this (model, target): it cannot be requested."""

    code = "no_policy"
    status = 422


class AmbiguousPolicy(QuorumError):
    """Two policies are equally specific for one (model, target)."""

    code = "ambiguous_policy"
    status = 422


class UnknownModel(QuorumError):
    code = "unknown_model"
    status = 404


class UnknownVersion(QuorumError):
    code = "unknown_version"
    status = 404


class InvalidVersion(QuorumError):
    code = "invalid_version"
    status = 400


class InvalidTarget(QuorumError):
    code = "invalid_target"
    status = 422


class VersionDeleted(QuorumError):
    code = "version_deleted"
    status = 409


class AlreadyAtTarget(QuorumError):
    code = "already_at_target"
    status = 409


class BreakGlassLimit(QuorumError):
    """The user broke glass as often as QUORUM_BREAK_GLASS_PER_DAY allows."""

    code = "break_glass_limit"
    status = 429


class NothingToRollBack(QuorumError):
    """The target has no previous holder to put back, or the version named never held it."""

    code = "nothing_to_roll_back"
    status = 409


class DuplicateRequest(QuorumError):
    code = "duplicate_request"
    status = 409


class RequestNotFound(QuorumError):
    code = "not_found"
    status = 404


class RequestClosed(QuorumError):
    """The request is no longer pending (decided, cancelled or expired)."""

    code = "request_closed"
    status = 409


class NotEligible(QuorumError):
    """The user is in none of the groups the policy requires."""

    code = "not_eligible"
    status = 403


class NotARequester(QuorumError):
    """The policy names the groups that may request, and the user is in none of them."""

    code = "not_a_requester"
    status = 403


class SelfApprovalNotAllowed(NotEligible):
    code = "self_approval_not_allowed"


class AlreadyVoted(QuorumError):
    code = "already_voted"
    status = 409


class CommentRequired(QuorumError):
    code = "comment_required"
    status = 400


class InvalidVote(QuorumError):
    code = "invalid_vote"
    status = 400


class NotAllowed(QuorumError):
    """The user may not do this to this request (cancel someone else's, retry without staff)."""

    code = "forbidden"
    status = 403


class WrongExecutionState(QuorumError):
    code = "wrong_execution_state"
    status = 409


class EmptyComment(QuorumError):
    code = "empty_comment"
    status = 400


class CommentTooLong(QuorumError):
    code = "comment_too_long"
    status = 400


class PageStale(QuorumError):
    """The request changed (decided, cancelled) after the page that sent the form was loaded."""

    code = "page_stale"
    status = 409


class InvalidReason(QuorumError):
    code = "invalid_reason"
    status = 400


class AnswerRequired(QuorumError):
    """The version was rejected for this target before: the requester must say what changed."""

    code = "answer_required"
    status = 422
