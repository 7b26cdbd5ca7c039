"""Where a transition job's time goes: the jobs of a burst run one after another under cProfile,
in this process, by the worker class `manage.py rqworker` runs (transitions run in the worker
process itself, `quorum/workers.py`).

    .venv/bin/python bench/transition_profile.py [--jobs 30] [--top 30] [--out FILE] [--plain]

Registers one model of JOBS versions with model files, as bench/burst.py does, opens a request per
version to Staging under a one-approver policy, lets the digest and evidence jobs finish, casts
the approvals (their transition jobs are queued), then has the worker run the `transitions`
queue in a burst under cProfile. Prints, per job: the worker's CPU time, the MLflow server's
(the processes this script started), the wall time, and the MLflow calls made; then the
functions with the most cumulative time. The follow-up syncs are jobs of their own on the
`sync` queue and are not run. `--out` keeps the profile for pstats or snakeviz; `--plain` runs
the jobs without the profiler, for CPU times the profiler does not inflate, and then moves the
same versions on with MLflow's own client, one call each as bench/burst.py's raw movers do: the
CPU a raw move costs beside a transition job's, and the most transitions a second the machine's
cores allow.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time

from _common import bench_stack

TICKS = os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=30)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--out", help="write the raw profile here")
    parser.add_argument("--plain", action="store_true", help="time the jobs, do not profile them")
    args = parser.parse_args()
    with bench_stack("transition_profile") as url:
        run(url, args)


def children_cpu() -> float:
    """CPU seconds (user + system) of the processes this one started, and theirs: the MLflow
    server."""
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        cpu[int(entry)] = (int(fields[11]) + int(fields[12])) / TICKS
    mine, grew = {os.getpid()}, True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in mine} - mine
        mine |= more
        grew = bool(more)
    return sum(cpu[pid] for pid in mine - {os.getpid()})


def run(url: str, args) -> None:
    import django_rq
    from burst import POLICY, register
    from django.contrib.auth.models import User
    from rq.registry import StartedJobRegistry

    import registry.mlflow_client.connection as mlflow_connection
    from quorum.workers import QuorumWorker
    from registry.mlflow_client import RegistryClient
    from registry.sync import sync_registry
    from reviews.decisions import opening, voting
    from reviews.models import Execution, TransitionRequest
    from reviews.policies.loading import policies_load

    name = "profiled"
    register(url, [name], args.jobs, files=True)
    sync_registry(model=name, client=RegistryClient(url))
    requester = User.objects.create_user("requester")
    approver = User.objects.create_user("approver")
    policies_load(text=POLICY)
    ids = [
        opening.request_create(model=name, version=n, target="Staging", requester=requester).pk
        for n in range(1, args.jobs + 1)
    ]
    # The digest and evidence jobs, as the workers would run them, in this process.
    background = [django_rq.get_queue(q) for q in ("default", "sync")]
    worker = django_rq.get_worker("default", "sync")
    while any(q.count or StartedJobRegistry(queue=q).count for q in background):
        worker.work(burst=True)
    for request_id in ids:
        voting.vote_cast(request_id=request_id, user=approver, decision="approve")
    transitions = django_rq.get_queue("transitions")
    assert transitions.count == len(ids), f"{transitions.count} transition jobs queued"

    class Profiled(QuorumWorker):
        def subscribe(self) -> None:  # a burst takes no commands
            pass

        def unsubscribe(self) -> None:
            pass

    calls = 0
    counted = mlflow_connection.Connection._call

    def counting(self, method, *a, **kw):
        nonlocal calls
        calls += 1
        return counted(self, method, *a, **kw)

    mlflow_connection.Connection._call = counting  # type: ignore[method-assign]
    profiler = cProfile.Profile()
    server_before, cpu_before, wall_before = children_cpu(), time.process_time(), time.time()
    if not args.plain:
        profiler.enable()
    Profiled([transitions], connection=transitions.connection).work(burst=True)
    profiler.disable()
    wall, cpu = time.time() - wall_before, time.process_time() - cpu_before
    server = children_cpu() - server_before
    done = TransitionRequest.objects.filter(pk__in=ids, execution=Execution.DONE).count()
    if done != len(ids):
        sys.exit(f"{done} of {len(ids)} requests done")
    n = len(ids)
    print(
        f"\n{n} transition jobs, per job: worker CPU {cpu / n * 1000:.0f} ms"
        f"{'' if args.plain else ' (under the profiler)'}, "
        f"MLflow server CPU {server / n * 1000:.0f} ms, wall {wall / n * 1000:.0f} ms, "
        f"{calls / n:.1f} MLflow calls\n"
    )
    if args.plain:
        raw_comparison(url, name, n, per_job_cpu=(cpu + server) / n)
        return
    if args.out:
        profiler.dump_stats(args.out)
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(args.top)


def raw_comparison(url: str, name: str, n: int, *, per_job_cpu: float) -> None:
    """The same versions moved on to Production by MLflow's own client, one call each, as
    bench/burst.py's raw movers move them: the CPU of a raw move (this process and the MLflow
    server) against a transition job's, and the most moves a second each allows on this
    machine's cores, however the work is scheduled."""
    from burst import move_directly

    server_before, cpu_before = children_cpu(), time.process_time()
    move_directly(url, [(name, number) for number in range(1, n + 1)], "Production")
    raw_cpu = (time.process_time() - cpu_before + children_cpu() - server_before) / n
    cores = os.cpu_count() or 1
    print(
        f"CPU per move, client and MLflow server together: transition job "
        f"{per_job_cpu * 1000:.0f} ms, raw move {raw_cpu * 1000:.0f} ms "
        f"({raw_cpu / per_job_cpu:.2f}x). With all {cores} cores busy: at most "
        f"{cores / per_job_cpu:.0f} transitions/s, {cores / raw_cpu:.0f} raw moves/s\n"
    )


if __name__ == "__main__":
    main()
