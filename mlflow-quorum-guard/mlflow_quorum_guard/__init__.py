"""An MLflow server app that lets only Quorum move a protected stage or alias.

Run MLflow with `mlflow server --app-name quorum-guard ...`; the configuration comes from
QUORUM_GUARD_* environment variables (see `config.py` and Quorum's docs/enforcement.md).
"""

VERSION = "0.2.0"
