"""The guard's configuration, from environment variables that `mlflow server` passes to its workers.

QUORUM_GUARD_AUTH            `token` (default): the guard runs alone and Quorum proves itself with
                             `Authorization: Bearer <QUORUM_GUARD_SERVICE_TOKEN>`;
                             `basic-auth`: the guard wraps MLflow's basic-auth app, users keep their
                             logins and permissions, and Quorum is a basic-auth user named in
                             QUORUM_GUARD_SERVICE_USERS.
QUORUM_GUARD_SERVICE_TOKEN   the bearer token of Quorum's service identity (token mode).
QUORUM_GUARD_SERVICE_USERS   comma-separated basic-auth user names of Quorum (basic-auth mode).
QUORUM_GUARD_DEFAULT_TARGETS targets protected on models Quorum has not tagged yet, comma-separated
                             stages and @aliases (default `Staging,Production`; `none` for none).
QUORUM_GUARD_REQUEST_URL     where a promotion can be requested, when the model's tag names none.
QUORUM_GUARD_LOCK_DIR        directory of the per-model lock files that serialise the guard's
                             check with the change it allows across the server's workers
                             (default `$XDG_RUNTIME_DIR/mlflow-quorum-guard`, or
                             `$TMPDIR/mlflow-quorum-guard-<uid>` without XDG_RUNTIME_DIR). It
                             must be the server user's alone (`private_lock_dir`): anyone else who
                             can write there could hold or replace a model's lock file.
QUORUM_GUARD_PROTECT_RUN_DATA `true` (default) or `false`: whether metrics and params of the runs
                             (and logged models) behind held versions are kept still; `false`
                             for teams that keep logging live metrics to the training run.
QUORUM_GUARD_WEBHOOK_NAME    the name of Quorum's own MLflow webhook, which only Quorum may change
                             or delete (default `quorum`, what `manage.py register_mlflow_webhook`
                             creates); `QUORUM_GUARD_WEBHOOK_URL` names it by its URL as well.
"""

from __future__ import annotations

import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mlflow_quorum_guard.protection import TargetError, split_targets

TOKEN = "token"  # noqa: S105 - the name of a mode, not a secret
BASIC_AUTH = "basic-auth"


class GuardConfigError(RuntimeError):
    """The guard cannot start: the message names the variable and what to set."""


@dataclass(frozen=True)
class GuardConfig:
    auth: str
    service_token: str
    service_users: frozenset[str]
    default_targets: tuple[str, ...]
    request_url: str
    lock_dir: Path
    protect_run_data: bool = True
    webhook_name: str = "quorum"
    webhook_url: str = ""

    @property
    def wraps_basic_auth(self) -> bool:
        return self.auth == BASIC_AUTH

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> GuardConfig:
        env = dict(os.environ if env is None else env)
        auth = (env.get("QUORUM_GUARD_AUTH") or TOKEN).strip().lower()
        if auth not in (TOKEN, BASIC_AUTH):
            raise GuardConfigError(
                f"QUORUM_GUARD_AUTH={auth!r}: use {TOKEN!r} (the guard alone) or {BASIC_AUTH!r} "
                "(on top of MLflow's basic-auth app)"
            )
        token = (env.get("QUORUM_GUARD_SERVICE_TOKEN") or "").strip()
        users = frozenset(
            u.strip() for u in (env.get("QUORUM_GUARD_SERVICE_USERS") or "").split(",") if u.strip()
        )
        if auth == TOKEN and len(token) < 16:
            raise GuardConfigError(
                "QUORUM_GUARD_SERVICE_TOKEN must be set to a secret of at least 16 characters "
                "(Quorum sends it as MLFLOW_TRACKING_TOKEN), or set QUORUM_GUARD_AUTH=basic-auth"
            )
        if auth == BASIC_AUTH and not users:
            raise GuardConfigError(
                "QUORUM_GUARD_SERVICE_USERS must name the basic-auth user Quorum logs in as "
                "(Quorum sends MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD)"
            )
        raw_targets = env.get("QUORUM_GUARD_DEFAULT_TARGETS")
        if raw_targets is None:
            raw_targets = "Staging,Production"
        if raw_targets.strip().lower() == "none":
            raw_targets = ""
        targets = tuple(t.strip() for t in raw_targets.split(",") if t.strip())
        try:
            split_targets(targets)
        except TargetError as error:
            raise GuardConfigError(f"QUORUM_GUARD_DEFAULT_TARGETS: {error}") from error
        lock_dir = Path(env.get("QUORUM_GUARD_LOCK_DIR") or default_lock_dir(env))
        webhook_name = (env.get("QUORUM_GUARD_WEBHOOK_NAME") or "quorum").strip()
        return cls(
            auth=auth,
            service_token=token,
            service_users=users,
            default_targets=targets,
            request_url=(env.get("QUORUM_GUARD_REQUEST_URL") or "").strip(),
            lock_dir=lock_dir,
            protect_run_data=env_bool(env, "QUORUM_GUARD_PROTECT_RUN_DATA", default=True),
            webhook_name=webhook_name,
            webhook_url=(env.get("QUORUM_GUARD_WEBHOOK_URL") or "").strip(),
        )


def env_bool(env: dict[str, str], name: str, *, default: bool) -> bool:
    """`true` or `false` (any case), the default when unset; anything else stops the start, so a
    typo never turns a protection off."""
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw not in ("true", "false"):
        raise GuardConfigError(f"{name}={env[name]!r}: use 'true' or 'false'")
    return raw == "true"


def default_lock_dir(env: dict[str, str]) -> Path:
    """The user's runtime directory (private by design) when the session has one, else a
    directory of the user's own in the temporary directory, named after their uid."""
    if runtime := env.get("XDG_RUNTIME_DIR"):
        return Path(runtime) / "mlflow-quorum-guard"
    return Path(tempfile.gettempdir()) / f"mlflow-quorum-guard-{os.geteuid()}"


def private_lock_dir(path: Path) -> Path:
    """`path`, created with mode 0700 when missing; raises `GuardConfigError` when it exists but
    is not a directory only this process's user can write: anyone else who can write there could
    hold a model's lock (stalling every change to it) or replace its lock file (letting a check
    and a change interleave)."""
    where = f"QUORUM_GUARD_LOCK_DIR={str(path)!r}"
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = os.lstat(path)
    except OSError as error:
        raise GuardConfigError(f"{where}: cannot create it: {error.strerror}") from error
    if stat.S_ISLNK(info.st_mode):
        raise GuardConfigError(f"{where} is a symbolic link: give the directory's own path")
    if not stat.S_ISDIR(info.st_mode):
        raise GuardConfigError(f"{where} is not a directory")
    user = os.geteuid()
    if info.st_uid != user:
        raise GuardConfigError(
            f"{where} is owned by uid {info.st_uid}, not by the user the MLflow server runs as "
            f"(uid {user}): point QUORUM_GUARD_LOCK_DIR at a directory of that user's own"
        )
    if writers := [who for who, bit in (("group", 0o020), ("others", 0o002)) if info.st_mode & bit]:
        raise GuardConfigError(
            f"{where} is writable by {' and '.join(writers)} (mode "
            f"{stat.S_IMODE(info.st_mode):04o}): only the MLflow server's user may write there "
            f"(chmod 700 {path}), or point QUORUM_GUARD_LOCK_DIR at another directory"
        )
    return path
