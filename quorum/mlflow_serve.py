"""`mlflow server` in one process: `python -m quorum.mlflow_serve <mlflow server options>`.

`mlflow server` imports MLflow, prepares the stores, then starts uvicorn as a second process, which
imports MLflow again to serve: two imports of MLflow (about 6 s of CPU each on a slow machine) and
two resident processes for every server. With one uvicorn worker the first process only waits.
This runs MLflow's own `server` command unchanged, except that the uvicorn command it would start
runs here, in the process that has already imported MLflow: the same options, the same
environment MLflow computes for its server, the same app. The test fixtures, the benchmarks and
the demo start their servers this way (`quorum.localservices.start_mlflow_server`).

When MLflow no longer starts its server through `mlflow.server._exec_cmd` (a private function,
pinned by the lock and checked by `make test-latest`) or starts something other than uvicorn, the
command runs as `mlflow server` does, in two processes, and says so on stderr.
"""

from __future__ import annotations

import os
import sys


class _Finished:
    """What `_run_server` gets back instead of a `Popen`: the server has already stopped."""

    returncode = 0

    def poll(self) -> int:
        return 0

    def wait(self, timeout: float | None = None) -> int:
        return 0

    def send_signal(self, signum: int) -> None:
        pass


def main(argv: list[str]) -> None:
    import mlflow.server
    from mlflow.cli import cli

    start_process = getattr(mlflow.server, "_exec_cmd", None)
    if not callable(start_process):
        print(
            "quorum.mlflow_serve: this MLflow does not start its server through "
            "mlflow.server._exec_cmd; running it in two processes",
            file=sys.stderr,
        )
    else:

        def serve_here(cmd, *args, extra_env=None, **kwargs):
            if list(cmd[1:3]) != ["-m", "uvicorn"]:
                return start_process(cmd, *args, extra_env=extra_env, **kwargs)
            import uvicorn

            os.environ.update(extra_env or {})
            uvicorn.main.main(args=list(cmd[3:]), prog_name="uvicorn", standalone_mode=False)
            return _Finished()

        mlflow.server._exec_cmd = serve_here
    cli.main(args=["server", *argv], prog_name="mlflow")


if __name__ == "__main__":
    main(sys.argv[1:])
