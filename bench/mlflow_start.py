"""What starting an MLflow server costs: `mlflow server` as MLflow starts it (the command, which
starts uvicorn as a second process) against `quorum.mlflow_serve` (the same command serving in its
own process), alternately, on a new SQLite store each time.

    .venv/bin/python bench/mlflow_start.py [--rounds 3]

For each start: the wall time until /health answers, the CPU time (user + system) of every
process of the server's process group at that moment (read from /proc), and their resident
memory. Medians per way; CPU time, unlike wall time, hardly depends on other work on the machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from quorum.localservices import free_port, start_mlflow_server  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def group_usage(pgid: int) -> tuple[float, float, int]:
    """CPU seconds and resident MiB of the processes in `pgid`, and how many there are."""
    cpu = rss = 0.0
    count = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) != pgid:  # field 5 of stat: the process group
            continue
        cpu += (int(fields[11]) + int(fields[12])) / TICKS
        rss += int(fields[21]) * PAGE / 2**20
        count += 1
    return cpu, rss, count


def start_once(in_one_process: bool) -> dict:
    with tempfile.TemporaryDirectory(prefix="mlflow-start-") as store:
        started = time.monotonic()
        server = start_mlflow_server(
            Path(store),
            port=free_port(),
            in_one_process=in_one_process,
        )
        wall = time.monotonic() - started
        cpu, rss, count = group_usage(server.process.pid)
        server.stop()
    return {"wall": wall, "cpu": cpu, "rss": rss, "processes": count}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    results: dict[str, list[dict]] = {"mlflow server": [], "quorum.mlflow_serve": []}
    for round_number in range(options.rounds):
        # Alternate which way goes first, so a drift in the machine's load favours neither.
        order = [False, True] if round_number % 2 == 0 else [True, False]
        for one in order:
            name = "quorum.mlflow_serve" if one else "mlflow server"
            result = start_once(one)
            results[name].append(result)
            print(
                f"round {round_number + 1} {name}: ready in {result['wall']:.1f} s, "
                f"{result['cpu']:.1f} CPU-s, {result['rss']:.0f} MiB in "
                f"{result['processes']} processes",
                flush=True,
            )
    print(f"\n{'way':<22} {'ready (s)':>10} {'CPU (s)':>9} {'RSS (MiB)':>10} {'processes':>10}")
    for name, rows in results.items():
        print(
            f"{name:<22} {statistics.median(r['wall'] for r in rows):>10.1f} "
            f"{statistics.median(r['cpu'] for r in rows):>9.1f} "
            f"{statistics.median(r['rss'] for r in rows):>10.0f} "
            f"{statistics.median(r['processes'] for r in rows):>10.0f}"
        )


if __name__ == "__main__":
    main()
