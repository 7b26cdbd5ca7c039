"""What the `quorum` command says about a request it reads from the API: the exit code a wait
ends with, its title, one line for where it stands (printed again only when it changes), and a
line per gate, vote and comment."""

from __future__ import annotations

EXIT_DONE = 0
EXIT_DECLINED = 1
# `quorum status` prints each comment on one line this wide at most.
COMMENT_WIDTH = 200


def outcome(request: dict) -> int | None:
    """The exit code this request ends a wait with, or None while it is still in flight."""
    decision, execution = request["decision"], request.get("execution")
    # `status` says expired as soon as the deadline passes; `decision` follows when the server's
    # reconciler runs. Nothing can approve the request in between.
    if decision in ("rejected", "cancelled", "expired") or request.get("status") == "expired":
        return EXIT_DECLINED
    if decision == "approved" and execution == "done":
        return EXIT_DONE
    if decision == "approved" and execution == "failed":
        return EXIT_DECLINED
    return None


def title(request: dict) -> str:
    kind = request.get("kind", "promotion")
    return (
        f"Request #{request['id']}: {request['model']} version {request['version']} "
        f"-> {request['target']}" + ("" if kind == "promotion" else f" ({kind.replace('_', ' ')})")
    )


def join_names(names: list[str]) -> str:
    """'alice', 'alice and bob', 'alice, bob and carol'."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def decided_by(request: dict) -> str:
    """' by alice, bob and carol': an approval names the quorum that made it (`approved_by`),
    other decisions the person who took them."""
    if request["decision"] == "approved" and request.get("approved_by"):
        return f" by {join_names(request['approved_by'])}"
    return f" by {request['decided_by']}" if request.get("decided_by") else ""


def gate_line(gate: dict) -> str:
    """'gate passed: ...', 'gate FAILED: ...' (a required gate), or 'gate not auto-approved
    (needs sign-off): ...' for an auto-approve gate that did not fire, which rejects nothing."""
    verdict = gate.get("verdict") or (
        "passed"
        if gate.get("passed")
        else "needs_sign_off"
        if gate.get("kind") == "auto_approve"
        else "failed"
    )
    words = {"passed": "passed", "needs_sign_off": "not auto-approved (needs sign-off)"}
    return f"gate {words.get(verdict, 'FAILED')}: {gate.get('reason')}"


def state_line(request: dict) -> str:
    """One line that changes exactly when something a waiting person cares about changes."""
    decision, execution = request["decision"], request.get("execution")
    by = decided_by(request)
    reason = request.get("decision_reason") or ""
    if decision == "pending" and request.get("status") == "expired":
        return f"expired: no decision before {request['expires_at']}"
    if decision == "pending":
        groups = ", ".join(
            f"{r['group']} {min(len(r['approvers']), r['needed'])}/{r['needed']}"
            + (f" ({', '.join(r['approvers'])})" if r["approvers"] else "")
            for r in request.get("requirements", [])
        )
        return f"pending: waiting for approvals: {groups or 'none required'}"
    if decision == "approved":
        if execution == "done":
            return (
                f"done: {request['model']} version {request['version']} is at "
                f"{request['target']} (approved{by})"
            )
        if execution == "failed":
            return f"failed: approved{by}, but the transition failed: {request['execution_error']}"
        attempt = request.get("execution_attempts") or 0
        running = f" (attempt {attempt})" if execution == "running" and attempt > 1 else ""
        return f"approved{by}: transition {execution or 'queued'}{running}"
    return f"{decision}{by}: {reason}" if reason else f"{decision}{by}"


def comment_line(comment: dict) -> str:
    # One line per comment in a terminal: its line breaks become spaces, a long one is cut.
    body = " ".join(str(comment.get("body", "")).split())
    if len(body) > COMMENT_WIDTH:
        body = body[: COMMENT_WIDTH - 1] + "…"
    return f"{comment.get('author')} ({comment.get('created_at', '')[:16]}): {body}"


def vote_line(vote: dict) -> str:
    """'alice approved (for ml-leads)': who voted, and which one group their approval counts for."""
    line = f"{vote['user']} {'approved' if vote['decision'] == 'approve' else 'rejected'}"
    if vote.get("stale"):
        return f"{line}, no longer counts: {vote.get('stale_reason') or 'the evidence changed'}"
    if vote.get("counted_for"):
        return f"{line} (for {vote['counted_for']})"
    if vote["decision"] == "approve":
        return f"{line} (not counted: {', '.join(vote.get('groups', []))} already full)"
    return line
