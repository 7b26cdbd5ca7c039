"""Mirroring MLflow's Model Registry into Quorum's database.

Three ways in, one way to write (`registry.mirror`):

- **full**: every registered model, every version, and every version's run (metrics and params)
  in batched `search_runs` calls. Versions and models gone from MLflow are marked deleted, never
  dropped. Nightly, and whenever someone asks for it.
- **incremental**: every registered model (one call per 1,000: that is where aliases live), plus
  versions walked newest-first by `last_updated_timestamp` until the mirror's watermark, plus a
  complete listing of only those models whose own timestamp moved (MLflow bumps it when a version
  is created, transitioned or deleted, which is how deletions are noticed). A quiet registry costs
  two calls whatever its size. Version tags set in MLflow bump no timestamp: the webhook and the
  nightly full sync pick those up.
- **model**: one model's versions completely, and the runs of versions it has not read yet (the
  webhook receiver and the transition job queue these).

And one way that reads nothing: **a move** (`mirror_move`), the versions a transition job just
moved, as MLflow answered the move, recorded by the job itself while it still holds the model.

Each observed difference becomes a `RegistryChange`: the review app reads them to tell the
transitions its own jobs made from the ones made in MLflow directly. Syncs are serialised by a row
lock so a webhook-triggered sync and the periodic one never interleave their writes, and a sync
that fails part way (MLflow went down) writes nothing but its `SyncRun` error.

A hostile registry does not stop a sync: what cannot be mirrored (see `registry.mirror`) is
skipped and listed on the `SyncRun`, and `sync_finished` tells the review app how each sync ended
(it mails staff when syncs keep failing).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

from django.db import OperationalError, connection, transaction
from django.db.models import Max
from django.utils import timezone

from .mirror import apply_mlflow_state
from .mlflow_client import (
    RUN_READERS,
    MlflowError,
    MlflowModel,
    MlflowVersion,
    RegistryClient,
    Runs,
)
from .models import SKIPPED_KEPT, ModelVersion, RegisteredModel, SyncKind, SyncLock, SyncRun
from .signals import sync_finished
from .storable import can_hold, printable

logger = logging.getLogger(__name__)

# Re-read versions updated this long before the newest one already mirrored: a write MLflow
# committed late, or stamped by a server process whose clock lags a little, is still seen.
# Larger costs a quiet registry more pages per sync; the nightly full sync is the backstop.
WATERMARK_MARGIN_MS = 5_000

# progress(step description, done, total)
Progress = Callable[[str, int, int], None]


@dataclass
class SyncResult:
    kind: str
    models: int = 0
    versions: int = 0
    changes: int = 0
    mlflow_calls: int = 0
    seconds: float = 0.0
    change_ids: list[int] = field(default_factory=list, repr=False)
    # What could not be mirrored: [{"model", "version", "reason"}, ...] (see registry.mirror).
    skipped: list[dict] = field(default_factory=list, repr=False)

    def __str__(self) -> str:
        return (
            f"synced {self.models} models, {self.versions} versions, "
            f"{self.changes} changes in {self.seconds:.2f} s"
            + (f"; {self.not_mirrored} not mirrored" if self.not_mirrored else "")
            + (f"; {self.partial} without their run" if self.partial else "")
        )

    def recorded(self) -> dict:
        """What its `SyncRun` row keeps of it."""
        return {
            "models_seen": self.models,
            "versions_seen": self.versions,
            "changes_count": self.changes,
            "mlflow_calls": self.mlflow_calls,
            "seconds": self.seconds,
            "skipped": self.skipped[:SKIPPED_KEPT],
            "skipped_count": len(self.skipped),
        }

    @property
    def partial(self) -> int:
        """Versions mirrored without their run's metrics and params (it could not be read)."""
        return sum(1 for item in self.skipped if item.get("partial"))

    @property
    def not_mirrored(self) -> int:
        return len(self.skipped) - self.partial


class SyncError(Exception):
    """The sync could not finish; nothing it read was written."""


def sync_registry(
    *,
    full: bool = False,
    model: str | None = None,
    client: RegistryClient | None = None,
    progress: Progress | None = None,
) -> SyncResult:
    """Brings the mirror up to date with MLflow and records what changed.

    `model` syncs that one model completely; `full` the whole registry; otherwise incremental
    (which falls back to full while the mirror is empty). A model or version that cannot be
    mirrored is skipped and listed in the result's `skipped` (and on the `SyncRun`); the rest is
    written. Raises `SyncError` when the sync cannot finish (MLflow cannot be read, or anything
    else went wrong); whatever happens, the `SyncRun` row keeps the error and the finish time.
    """
    return _sync(full=full, model=model, client=client, progress=progress)


def mirror_move(
    name: str, versions: list[MlflowVersion], *, model: MlflowModel | None = None
) -> SyncResult | None:
    """Records what a move Quorum just made changed, as a sync records it, without reading
    MLflow: `versions` as the move left them (the moved version as MLflow answered the move, the
    versions it archived), and for an alias move `model` with its aliases as the move left them
    (without it, the model's row is kept as mirrored, aliases included).

    For a transition job, while it still holds the model: the holder timeline gets each holding
    Quorum made when it made it, credited to the job's running request by the receivers of
    `changes_observed`, as any sync's changes are. Its record is a `SyncRun` of kind `move`.
    Never waits for another sync: returns None at once, having done nothing, when one holds the
    registry (it may have read MLflow before this move and write after it). Raises `SyncError`
    having written nothing, not even its record, when anything fails. Either way the model's
    next sync mirrors the move."""
    started = time.perf_counter()
    try:
        SyncLock.objects.get_or_create(name="registry")
        with transaction.atomic():
            _lock_registry(wait=False)
            run = SyncRun.objects.create(kind=SyncKind.MOVE, model_name=printable(name, 256))
            if model is None:
                model = _as_mirrored(name)
            result = _apply(
                models={name: model},
                versions=versions,
                runs=Runs(),
                complete_models=set(),
                all_models_listed=False,
                sync_run=run,
            )
            result.kind = SyncKind.MOVE
            result.seconds = time.perf_counter() - started
            recorded = result.recorded()
            SyncRun.objects.filter(pk=run.pk).update(finished_at=timezone.now(), **recorded)
    except RegistryBusy:
        return None
    except Exception as error:
        raise SyncError(_describe(error)) from error
    return result


def _as_mirrored(name: str) -> MlflowModel:
    """The model as the mirror has it: what a stage move leaves as it was."""
    row = RegisteredModel.objects.get(name=name)
    return MlflowModel(
        name=row.name,
        description=row.description,
        tags=row.tags,
        aliases=row.aliases,
        creation_timestamp=row.creation_timestamp,
        last_updated_timestamp=row.last_updated_timestamp,
    )


def _sync(
    *,
    full: bool,
    model: str | None,
    client: RegistryClient | None,
    progress: Progress | None,
) -> SyncResult:
    client = client or RegistryClient()
    kind = SyncKind.MODEL if model is not None else SyncKind.FULL if full else SyncKind.INCREMENTAL
    run = SyncRun.objects.create(kind=kind, model_name=printable(model or "", 256))
    started = time.perf_counter()
    calls_before = client.calls
    try:
        SyncLock.objects.get_or_create(name="registry")
        with transaction.atomic():
            # Held while reading MLflow too: two syncs that read in one order and wrote in the
            # other would record a change backwards.
            _lock_registry(wait=True)
            if kind == SyncKind.MODEL:
                result = _sync_one_model(client, model or "", run, progress)
            elif kind == SyncKind.INCREMENTAL and _watermark() is not None:
                result = _sync_incremental(client, run, progress)
            else:
                result = _sync_full(client, run, progress)
    except BaseException as error:  # noqa: BLE001 - recorded, then raised again
        message = printable(error) if isinstance(error, MlflowError) else _describe(error)
        _finish(
            run,
            error=message,
            seconds=time.perf_counter() - started,
            mlflow_calls=client.calls - calls_before,
        )
        if not isinstance(error, Exception):  # interrupted (a worker stopping): not ours to wrap
            raise
        if isinstance(error, MlflowError):
            logger.warning("registry sync failed: %s", message)
        else:
            logger.exception("registry sync failed")
        raise SyncError(message) from error
    result.kind = kind
    result.mlflow_calls = client.calls - calls_before
    result.seconds = time.perf_counter() - started
    _finish(run, **result.recorded())
    logger.info("%s sync: %s (%d MLflow calls)", kind, result, result.mlflow_calls)
    for item in result.skipped[:SKIPPED_LOGGED]:
        logger.warning(
            "%s: %s%s: %s",
            "mirrored in part" if item.get("partial") else "not mirrored",
            item["model"],
            f" v{item['version']}" if item["version"] is not None else "",
            item["reason"],
        )
    return result


# Skipped versions named one by one in the log; the SyncRun row keeps SKIPPED_KEPT of them.
SKIPPED_LOGGED = 20


def _describe(error: BaseException, prefix: str = "") -> str:
    text = str(error).strip()
    return printable(prefix + (f"{type(error).__name__}: {text}" if text else type(error).__name__))


class RegistryBusy(Exception):
    """Another sync holds the registry, and the caller asked not to wait for it."""


def _lock_registry(wait: bool) -> None:
    """Takes the registry's sync lock for the current transaction: waiting for it, or (`wait`
    False, on PostgreSQL) raising RegistryBusy when another sync holds it."""
    locks = SyncLock.objects.select_for_update(nowait=not wait)
    if wait or connection.vendor != "postgresql":
        locks.get(name="registry")
        return
    try:
        with transaction.atomic():  # a savepoint: a refused lock leaves the transaction usable
            locks.get(name="registry")
    except OperationalError as error:
        if getattr(error.__cause__, "sqlstate", None) == LOCK_NOT_AVAILABLE:
            raise RegistryBusy from error
        raise


# PostgreSQL's SQLSTATE for a NOWAIT lock that another transaction holds.
LOCK_NOT_AVAILABLE = "55P03"


def _finish(run: SyncRun, **fields) -> None:
    """Records the sync's outcome on its row and tells whoever listens; never raises, so the
    sync's own error is the one its caller sees."""
    fields["finished_at"] = timezone.now()
    for name, value in fields.items():
        setattr(run, name, value)
    try:
        SyncRun.objects.filter(pk=run.pk).update(**fields)
    except Exception as error:
        logger.exception("could not record the outcome of sync run #%s", run.pk)
        run.error = _describe(error, prefix="recording this sync's outcome failed: ")
        try:  # at least its end, and why the rest is missing
            SyncRun.objects.filter(pk=run.pk).update(
                finished_at=fields["finished_at"], error=run.error
            )
        except Exception:
            return
    for receiver, response in sync_finished.send_robust(sender=SyncRun, sync_run=run):
        if isinstance(response, Exception):
            logger.error("%r failed after sync run #%s", receiver, run.pk, exc_info=response)


# -- the three ways of reading MLflow --------------------------------------------------------


def _sync_full(client: RegistryClient, run: SyncRun, progress: Progress | None) -> SyncResult:
    # The models listing (for aliases) is read by a thread of its own while the versions and
    # their runs are read, the runs by RUN_READERS threads: MLflow works on one call while this
    # process parses another. Nothing here touches the database until everything is read.
    models_reader = client.fork()
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            listing = pool.submit(models_reader.list_models)
            _report(progress, "listing models and versions", 0, 3)
            versions = client.list_versions()
            _report(progress, f"reading {len(versions)} runs", 1, 3)
            runs = client.get_runs((v.run_id for v in versions), readers=RUN_READERS)
            models = listing.result()
    finally:
        client.calls += models_reader.calls
    _report(progress, "writing the mirror", 2, 3)
    result = _apply(
        models={m.name: m for m in models},
        versions=versions,
        runs=runs,
        unreadable_runs=runs.unreadable,
        complete_models={m.name for m in models},
        all_models_listed=True,
        sync_run=run,
    )
    _report(progress, "done", 3, 3)
    return result


def _sync_incremental(
    client: RegistryClient, run: SyncRun, progress: Progress | None
) -> SyncResult:
    _report(progress, "listing models", 0, 3)
    models = {m.name: m for m in client.list_models()}
    mirrored_stamps = dict(
        RegisteredModel.objects.filter(deleted=False).values_list("name", "last_updated_timestamp")
    )
    since = (_watermark() or 0) - WATERMARK_MARGIN_MS

    _report(progress, "reading recent versions", 1, 3)
    versions: dict[tuple[str, int], MlflowVersion] = {}
    for version in client.iter_versions_newest_first():
        if (version.last_updated_timestamp or 0) < since:
            break
        versions[(version.name, version.version)] = version
    # A model whose own timestamp moved had a version created, transitioned or deleted: list it
    # completely so a deletion is seen too.
    moved = sorted(
        name
        for name, m in models.items()
        if name not in mirrored_stamps or mirrored_stamps[name] != m.last_updated_timestamp
    )
    for name in moved:
        for version in client.list_versions(name):
            versions[(version.name, version.version)] = version

    needing_runs = _versions_needing_runs(versions.values())
    runs = client.get_runs(v.run_id for v in needing_runs)
    _report(progress, "writing the mirror", 2, 3)
    result = _apply(
        models=models,
        versions=list(versions.values()),
        runs=runs,
        unreadable_runs=runs.unreadable,
        complete_models=set(moved),
        all_models_listed=True,
        sync_run=run,
    )
    _report(progress, "done", 3, 3)
    return result


def _sync_one_model(
    client: RegistryClient, name: str, run: SyncRun, progress: Progress | None
) -> SyncResult:
    _report(progress, f"reading {name}", 0, 2)
    found = client.get_model(name)
    if found is None:
        # Gone from MLflow (or never there): mark the mirror's copy deleted, if it has one.
        _report(progress, "writing the mirror", 1, 2)
        result = _apply(
            models={},
            versions=[],
            runs={},
            complete_models=set(),
            all_models_listed=False,
            deleted_models={name},
            sync_run=run,
        )
        _report(progress, "done", 2, 2)
        return result
    versions = client.list_versions(name)
    # Runs the mirror already holds are not read again (a transition job syncs its model after
    # every move); a run that logs more metrics later is picked up by the nightly full sync.
    runs = client.get_runs(v.run_id for v in _versions_needing_runs(versions))
    _report(progress, "writing the mirror", 1, 2)
    result = _apply(
        models={name: found},
        versions=versions,
        runs=runs,
        unreadable_runs=runs.unreadable,
        complete_models={name},
        all_models_listed=False,
        sync_run=run,
    )
    _report(progress, "done", 2, 2)
    return result


def _versions_needing_runs(versions: Iterable[MlflowVersion]) -> list[MlflowVersion]:
    """Versions whose run the mirror has not read yet (new, or pointing at another run)."""
    versions = [v for v in versions if v.run_id]
    if not versions:
        return []
    known = {
        (name, number): (run_id, bool(metrics) or bool(params))
        for name, number, run_id, metrics, params in ModelVersion.objects.filter(
            model__name__in={v.name for v in versions if can_hold(v.name)}
        ).values_list("model__name", "version", "run_id", "metrics", "params")
    }
    # Read unless the mirror holds this run's metrics or params already.
    return [v for v in versions if known.get((v.name, v.version)) != (v.run_id, True)]


def _apply(**state) -> SyncResult:
    applied = apply_mlflow_state(**state, watched_since=_watched_since())
    return SyncResult(kind="", **asdict(applied))


def _watched_since() -> int | None:
    """Since when (MLflow milliseconds) Quorum has watched the whole registry: the start of its
    first successful full or incremental sync, less WATERMARK_MARGIN_MS for an MLflow clock that
    lags Quorum's; None before one. A version created since was created while Quorum watched,
    so where it stands when first seen was not "already there" (`registry.mirror`)."""
    first = (
        SyncRun.objects.succeeded()
        .filter(kind__in=[SyncKind.FULL, SyncKind.INCREMENTAL])
        .order_by("id")  # the rows' creation order: read through the primary key
        .values_list("started_at", flat=True)
        .first()
    )
    return None if first is None else int(first.timestamp() * 1000) - WATERMARK_MARGIN_MS


def _watermark() -> int | None:
    return ModelVersion.objects.aggregate(newest=Max("last_updated_timestamp"))["newest"]


def _report(progress: Progress | None, step: str, done: int, total: int) -> None:
    if progress is not None:
        progress(step, done, total)
