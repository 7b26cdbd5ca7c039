"""The `quorum` command: request a promotion, follow it, wait for it, vote on it.

    quorum request MODEL VERSION --to Production|Staging|@champion [--comment TEXT] [--wait]
                   [--answer TEXT]   (required when the version was rejected there before)
    quorum request MODEL VERSION --to TARGET --break-glass --reason TEXT [--wait]
    quorum rollback MODEL --target Production [--to VERSION] [--comment TEXT] [--wait] [--preview]
    quorum status ID                      (also prints the latest comments)
    quorum wait ID [--timeout 2h]
    quorum vote ID approve|reject [--comment TEXT]
    quorum verify MODEL VERSION --target Production [--key FILE | --server URL]
    quorum policy explain MODEL VERSION --target T    quorum policy test CASES --policies FILE

Exit codes, for CI: 0 the version is at its target (or, without waiting, the call succeeded);
1 rejected, expired, cancelled or the transition failed (the reason is printed); 2 usage,
authentication, a refusal or an unreachable server; 3 timed out while waiting. `verify` (see
quorum_cli/verify.py) exits 0 for a valid proof, 1 for none or a bad one, 2 on usage or
connection errors, 4 when the keys would come over plain HTTP from another host. `policy`
(quorum_cli/policy.py) exits 0 explained / every case passed, 1 no policy / a case failed, 2 errors.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TextIO

from quorum_cli import __version__, policy, verify
from quorum_cli.client import Client, CliError, Unreachable
from quorum_cli.reading import (
    EXIT_DECLINED,
    EXIT_DONE,
    comment_line,
    gate_line,
    outcome,
    state_line,
    title,
    vote_line,
)

EXIT_TIMEOUT = 3

# How long polls may keep failing (a restart of the web app, a network blip) before a wait gives
# up with exit 2: a two-hour wait should not fail on one dropped connection.
UNREACHABLE_GRACE_SECONDS = 120

DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd]?)")
UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
# `quorum status` prints the newest comments on the request.
LATEST_COMMENTS = 3


def duration(text: str) -> float:
    """'90s', '30m', '2h', '1h30m', '45' (seconds) -> seconds; '0' means no limit."""
    compact = text.strip().lower().replace(" ", "")
    parts = DURATION_PART.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 90s, 30m, 2h or 1h30m")
    return sum(float(number) * UNIT_SECONDS[unit] for number, unit in parts)


# -- commands -------------------------------------------------------------------------------------


class Output:
    """Human lines go to stdout, or to stderr under --json so stdout is the JSON alone."""

    def __init__(self, as_json: bool):
        self.as_json = as_json
        self.human: TextIO = sys.stderr if as_json else sys.stdout

    def line(self, text: str, *, stamp: bool = False) -> None:
        if stamp:
            text = f"[{datetime.now(UTC):%H:%M:%S}] {text}"
        print(text, file=self.human, flush=True)

    def final(self, request: dict) -> None:
        if self.as_json:
            print(json.dumps(request, indent=2, sort_keys=True), flush=True)


def wait_for(
    client: Client,
    request: dict,
    out: Output,
    *,
    timeout: float,
    poll: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[int, dict]:
    """Polls until the request ends or `timeout` seconds pass (0: no limit); prints each change."""
    start = clock()
    last = state_line(request)
    out.line(last, stamp=True)
    failing_since: float | None = None
    while (code := outcome(request)) is None:
        elapsed = clock() - start
        if timeout and elapsed >= timeout:
            out.line(
                f"timed out after {format_seconds(timeout)}: request #{request['id']} is still "
                f"{last}. Follow it at {request['url']}"
            )
            return EXIT_TIMEOUT, request
        sleep(min(poll, timeout - elapsed) if timeout else poll)
        try:
            request = client.get_request(request["id"])
        except Unreachable as error:
            if failing_since is None:
                failing_since = clock()
                out.line(f"{error}; retrying", stamp=True)
            elif clock() - failing_since > UNREACHABLE_GRACE_SECONDS:
                raise
            continue
        if failing_since is not None:
            failing_since = None
            out.line("Quorum answers again", stamp=True)
        if (line := state_line(request)) != last:
            out.line(line, stamp=True)
            last = line
    return code, request


def format_seconds(seconds: float) -> str:
    seconds = int(seconds)
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


# Quorum learns of a new version by syncing MLflow (at once with MLflow's webhook, else within
# its sync interval): a version registered a moment ago may not be known yet.
NOT_YET_SYNCED = {"unknown_model", "unknown_version"}


def create_when_synced(
    client: Client, args: argparse.Namespace, out: Output, *, sleep=time.sleep
) -> dict:
    deadline = time.monotonic() + args.sync_wait
    told = False
    while True:
        try:
            return client.create_request(
                args.model, args.version, args.to, args.comment, answer=args.answer
            )
        except CliError as error:
            if error.code not in NOT_YET_SYNCED or time.monotonic() >= deadline:
                raise
            if not told:
                out.line(f"{error}; waiting for Quorum to sync it from MLflow", stamp=True)
                told = True
            sleep(min(args.poll, max(deadline - time.monotonic(), 0.1)))


def cmd_request(client: Client, args: argparse.Namespace, out: Output) -> int:
    if args.break_glass:
        request = client.break_glass(args.model, args.version, args.to, args.reason)
        return _follow(client, request, args, out)
    return _follow(client, create_when_synced(client, args, out), args, out)


def _follow(client: Client, request: dict, args: argparse.Namespace, out: Output) -> int:
    """Prints a request just made and, with --wait, waits for it; the exit code it ends with."""
    out.line(title(request))
    out.line(request["url"])
    if args.wait:
        code, request = wait_for(client, request, out, timeout=args.timeout, poll=args.poll)
    else:
        out.line(state_line(request))
        code = EXIT_DECLINED if outcome(request) == EXIT_DECLINED else EXIT_DONE
    out.final(request)
    return code


def cmd_rollback(client: Client, args: argparse.Namespace, out: Output) -> int:
    # What it will take first, sized by the server as the request will be.
    preview = client.preview_rollback(args.model, args.target, args.to)
    out.line(
        f"Rollback of {preview['model']} {preview['target']} to v{preview['version']}: "
        f"{preview['needs']}"
    )
    if args.preview:
        out.final(preview)
        return EXIT_DONE
    request = client.create_rollback(args.model, args.target, args.to, args.comment)
    return _follow(client, request, args, out)


def cmd_status(client: Client, args: argparse.Namespace, out: Output) -> int:
    request = client.get_request(args.id)
    out.line(title(request))
    out.line(request["url"])
    out.line(state_line(request))
    for gate in request.get("gates", []):
        out.line(f"  {gate_line(gate)}")
    for vote in request.get("votes", []):
        out.line(f"  vote: {vote_line(vote)}")
    request["latest_comments"] = client.latest_comments(args.id, limit=LATEST_COMMENTS)
    for comment in request["latest_comments"]:
        out.line(f"  comment: {comment_line(comment)}")
    out.final(request)
    return EXIT_DECLINED if outcome(request) == EXIT_DECLINED else EXIT_DONE


def cmd_wait(client: Client, args: argparse.Namespace, out: Output) -> int:
    request = client.get_request(args.id)
    out.line(title(request))
    out.line(request["url"])
    code, request = wait_for(client, request, out, timeout=args.timeout, poll=args.poll)
    out.final(request)
    return code


def cmd_vote(client: Client, args: argparse.Namespace, out: Output) -> int:
    request = client.vote(args.id, args.decision, args.comment)
    out.line(f"Voted {args.decision} on request #{request['id']}.")
    out.line(state_line(request))
    out.final(request)
    return EXIT_DONE


# -- the command line -----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url",
        default=os.environ.get("QUORUM_URL"),
        help="the Quorum dashboard's address (default: $QUORUM_URL)",
    )
    common.add_argument(
        "--token",
        default=os.environ.get("QUORUM_TOKEN"),
        help="an API token from `manage.py create_api_token` (default: $QUORUM_TOKEN)",
    )
    common.add_argument(
        "--oidc-token-env",
        metavar="VAR",
        help="authenticate with the workload identity token (a JWT, e.g. GitHub Actions' or "
        "GitLab's OIDC token) in environment variable VAR instead of an API token",
    )
    common.add_argument(
        "--json", action="store_true", help="print the final request as JSON on stdout"
    )
    waiting = argparse.ArgumentParser(add_help=False)
    waiting.add_argument(
        "--timeout",
        type=duration,
        default=duration("2h"),
        help="give up (exit 3) after this long: 90s, 30m, 2h; 0 waits without limit (default: 2h)",
    )
    waiting.add_argument(
        "--poll", type=duration, default=2.0, help="seconds between checks (default: 2s)"
    )

    parser = argparse.ArgumentParser(
        prog="quorum",
        description="Request MLflow model promotions from Quorum and wait for the sign-offs.",
        epilog="Exit codes: 0 at target (executed), 1 rejected/expired/cancelled/failed, "
        "2 usage, auth or server unreachable, 3 timeout. verify: 0 a valid approval proof, 1 none "
        "or an invalid one, 2 usage or connection errors, 4 keys over plain HTTP from another "
        "host (see --insecure-keys).",
    )
    parser.add_argument("--version", action="version", version=f"quorum {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    request = commands.add_parser(
        "request",
        parents=[common, waiting],
        help="ask for a version to move to a stage or alias",
        description="Ask for VERSION of MODEL to move to a stage or an @alias.",
    )
    request.add_argument("model")
    request.add_argument("version")
    request.add_argument(
        "--to", required=True, metavar="TARGET", help="Production, Staging, Archived or @alias"
    )
    request.add_argument("--comment", default="", help="why, for the reviewers")
    request.add_argument(
        "--answer",
        default="",
        help="what changed since this version was rejected for this target (required then)",
    )
    request.add_argument(
        "--wait", action="store_true", help="block until the version is at its target"
    )
    request.add_argument(
        "--sync-wait",
        type=duration,
        default=duration("2m"),
        help="how long to retry while Quorum has not yet synced a just-registered model or "
        "version from MLflow (default: 2m; 0 does not retry)",
    )
    request.add_argument(
        "--break-glass",
        action="store_true",
        help="move it at once, without a quorum (members of the policy's break-glass groups; "
        "needs --reason; ratified afterwards)",
    )
    request.add_argument("--reason", default="", help="why you break glass (required with it)")
    request.set_defaults(run=cmd_request)

    rollback = commands.add_parser(
        "rollback",
        parents=[common, waiting],
        help="put back a version that held a stage or alias before",
        description="Ask for TARGET of MODEL to go back to the version that held it before it "
        "(or to --to VERSION, which must have held it): a rollback request, decided by the "
        "policy's rollback rules. Prints how many sign-offs it will take first.",
    )
    rollback.add_argument("model")
    rollback.add_argument(
        "--target", required=True, help="Production, Staging or @alias: what to roll back"
    )
    rollback.add_argument(
        "--to", metavar="VERSION", help="the version to put back (default: the previous holder)"
    )
    rollback.add_argument("--comment", default="", help="why, for the reviewers")
    rollback.add_argument(
        "--preview",
        action="store_true",
        help="only say what it would take (the version, the sign-offs); open nothing",
    )
    rollback.add_argument(
        "--wait", action="store_true", help="block until the version is back at its target"
    )
    rollback.set_defaults(run=cmd_rollback)

    status = commands.add_parser(
        "status",
        parents=[common],
        help="show a request",
        description="Show a request. Exits 1 when it was rejected, expired, cancelled or failed.",
    )
    status.add_argument("id", type=int)
    status.set_defaults(run=cmd_status)

    wait = commands.add_parser("wait", parents=[common, waiting], help="wait until a request ends")
    wait.add_argument("id", type=int)
    wait.set_defaults(run=cmd_wait)

    vote = commands.add_parser("vote", parents=[common], help="approve or reject a request")
    vote.add_argument("id", type=int)
    vote.add_argument("decision", choices=["approve", "reject"])
    vote.add_argument("--comment", default="", help="required when rejecting")
    vote.set_defaults(run=cmd_vote)

    policy.add_parser(commands, [common])
    checking = verify.add_parser(commands)
    checking.set_defaults(run=None, usage_error=checking.error)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # a usage error exits 2 here
    if args.command == "verify":
        try:
            return verify.run(args, args.usage_error)
        except CliError as error:
            print(f"quorum: {error}", file=sys.stderr, flush=True)
            return error.exit_code
    if not args.url:
        parser.error("no Quorum URL: pass --url or set QUORUM_URL")
    if args.oidc_token_env:
        args.token = os.environ.get(args.oidc_token_env, "").strip()
        if not args.token:
            parser.error(
                f"--oidc-token-env {args.oidc_token_env}: that environment variable is empty "
                "or unset (does the CI job request an ID token?)"
            )
    if not args.token:
        parser.error("no API token: pass --token, set QUORUM_TOKEN, or use --oidc-token-env VAR")
    if getattr(args, "break_glass", False) and not args.reason.strip():
        parser.error("--break-glass needs --reason: say why, it is audited and mailed")
    if getattr(args, "poll", 1) <= 0:
        parser.error("--poll must be more than 0")
    out = Output(args.json)
    try:
        return args.run(Client(args.url, args.token), args, out)
    except CliError as error:
        print(f"quorum: {error}", file=sys.stderr, flush=True)
        return error.exit_code
    except KeyboardInterrupt:
        print("quorum: interrupted", file=sys.stderr)
        return 130  # the shell's code for Ctrl-C


if __name__ == "__main__":
    sys.exit(main())
