"""Where the CPU of a command goes, by kind of process: the test processes, MLflow servers,
Chromium, RQ workers, `manage.py` commands, PostgreSQL...

    python bench/cpu_by_process.py -- make test          # runs it, then prints the table
    python bench/cpu_by_process.py --json out.json -- make test-fast

Every half second it reads /proc (Linux) for every process on the machine and keeps the last
CPU time (user + system) it saw for each; when the command ends it sums them by kind. A
process that lives less than half a second may be missed, and processes of other work on the
machine are counted too (the "other" rows): run it on an otherwise quiet machine, or pass
`--descendants` to count only the command's own processes and the processes they start (by the
parent each had when first seen). It measures,
it does not judge: docs/testing.md says what the figures meant when they were taken.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections import defaultdict

TICKS = os.sysconf("SC_CLK_TCK")

# (kind, pattern in the command line), first match wins.
KINDS = [
    ("Chromium", r"chrom(e|ium)"),
    ("Playwright driver", r"playwright/driver"),
    ("MLflow server: its app worker", r"uvicorn .*mlflow|mlflow\.server"),
    ("MLflow server: the `mlflow server` process", r"bin/mlflow server"),
    ("MLflow server in one process (quorum.mlflow_serve)", r"quorum\.mlflow_serve"),
    ("pytest-xdist test process", r"-c import sys;exec\(eval\(sys\.stdin\.readline"),
    ("RQ worker (tests/run_worker.py) and its work horses", r"run_worker\.py"),
    ("RQ worker (manage.py rqworker) and its work horses", r"manage\.py rqworker|rqworker"),
    ("cron (manage.py rqcron)", r"rqcron"),
    ("web: gunicorn or runserver", r"gunicorn|runserver"),
    ("manage.py, other commands", r"manage\.py|django-admin"),
    ("quorum CLI", r"bin/quorum |quorum_cli"),
    ("pytest main process", r"pytest"),
    ("mypy", r"mypy"),
    ("PostgreSQL", r"postgres"),
    ("Redis", r"redis-server"),
    ("installers (uv, pip)", r"\buv\b|/uv |pip "),
]


def kind_of(command: str) -> str:
    for kind, pattern in KINDS:
        if re.search(pattern, command):
            return kind
    return "other: " + (command.split()[0].rsplit("/", 1)[-1] if command else "?")


def sample(seen: dict, me: int) -> None:
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            fields = stat[stat.rindex(")") + 2 :].split()
            cpu = (int(fields[11]) + int(fields[12])) / TICKS
            key = (int(entry), int(fields[19]))  # pid and start time: pids are reused
            if key not in seen:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    command = f.read().replace(b"\0", b" ").decode(errors="replace")
                seen[key] = [0.0, command, int(fields[1])]  # fields[1]: the parent's pid
            seen[key][0] = cpu
        except (OSError, ValueError, IndexError):
            continue  # it ended between the listing and the read


def descendants(seen: dict, root: int) -> dict:
    """The processes of `seen` started by `root`, directly or not. A pid names the newest process
    that had it while its parent was alive, which is what a parent's children can be."""
    ours = {root}
    kept: dict = {}
    for key in sorted(seen, key=lambda k: k[1]):  # by start time: parents before their children
        if key[0] == root or seen[key][2] in ours:
            ours.add(key[0])
            kept[key] = seen[key]
    return kept


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="also write every process seen (pid, cpu s, command)")
    parser.add_argument(
        "--descendants",
        action="store_true",
        help="count only the command and the processes it started, not the rest of the machine",
    )
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("name the command to run after --")
    seen: dict = {}
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            sample(seen, os.getpid())
            done.wait(0.5)

    watcher = threading.Thread(target=watch, daemon=True)
    started = time.monotonic()
    watcher.start()
    process = subprocess.Popen(command)
    code = process.wait()
    done.set()
    watcher.join()
    wall = time.monotonic() - started
    if args.descendants:
        seen = descendants(seen, process.pid)

    totals: dict[str, list] = defaultdict(lambda: [0.0, 0])
    for cpu, cmdline, _ in seen.values():
        totals[kind_of(cmdline)][0] += cpu
        totals[kind_of(cmdline)][1] += 1
    everything = sum(cpu for cpu, _ in totals.values())
    print(
        f"\n{' '.join(command)}: exit {code}, {wall / 60:.1f} min wall, "
        f"{everything / 60:.1f} CPU-min seen on {os.cpu_count()} cores"
    )
    print(f"{'CPU-min':>8} {'share':>6} {'procs':>6}  kind")
    for kind, (cpu, count) in sorted(totals.items(), key=lambda item: -item[1][0]):
        if cpu >= 1:
            print(f"{cpu / 60:8.2f} {cpu / everything:6.1%} {count:6d}  {kind}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump([[pid, cpu, cmd] for (pid, _), (cpu, cmd, _) in seen.items()], f)
    return code


if __name__ == "__main__":
    sys.exit(main())
