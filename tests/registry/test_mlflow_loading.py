"""When a Quorum process loads MLflow (`registry.mlflow_client`): at a client's first call, not at
import. A command run where no MLflow answers never loads it (about 2 s of CPU, half of its
start); a worker loads it before it forks work horses, and a web process at start."""

from __future__ import annotations

import json

import pytest

from quorum.localservices import free_port
from registry.mlflow_client import MlflowError, RegistryClient
from tests.processes import manage

# Run by `manage.py shell -c`: the MLflow modules loaded after CODE, as JSON.
LOADED = "import json, sys; print(json.dumps(sorted(m for m in sys.modules if m == 'mlflow')))"


def loaded_after(code: str, tmp_path, **env: str) -> list[str]:
    result = manage("shell", "-c", f"{code}\n{LOADED}", var_dir=tmp_path, **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_command_with_no_mlflow_answering_never_loads_mlflow(tmp_path):
    checked = "from django.core.management import call_command\ncall_command('check')"
    assert loaded_after(checked, tmp_path) == []


def test_a_client_loads_mlflow_at_its_first_call(tmp_path, mlflow_server):
    made = "from registry.mlflow_client import RegistryClient\nclient = RegistryClient()"
    assert loaded_after(made, tmp_path, MLFLOW_TRACKING_URI=mlflow_server.url) == []
    called = f"{made}\nclient.list_models()"
    assert loaded_after(called, tmp_path, MLFLOW_TRACKING_URI=mlflow_server.url) == ["mlflow"]


def test_a_worker_loads_mlflow_before_it_forks_work_horses(tmp_path, settings):
    worker = (
        "import os\nfrom redis import Redis\nfrom quorum.workers import QuorumWorker\n"
        "QuorumWorker(['default'], connection=Redis.from_url(os.environ['REDIS_URL']))"
    )
    assert loaded_after(worker, tmp_path, REDIS_URL=settings.REDIS_URL) == ["mlflow"]


def test_a_web_process_loads_mlflow_at_start(tmp_path):
    assert loaded_after("import quorum.wsgi", tmp_path) == ["mlflow"]


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_the_guard_probe_of_an_address_where_nothing_listens_says_unreachable(scheme):
    client = RegistryClient(f"{scheme}://127.0.0.1:{free_port()}")
    with pytest.raises(MlflowError) as raised:
        client.guard_status()
    assert raised.value.unreachable and "Connection refused" in str(raised.value)


def test_the_guard_probe_of_a_port_out_of_range_says_unreachable_as_mlflow_did():
    with pytest.raises(MlflowError) as raised:
        RegistryClient("http://127.0.0.1:99999").guard_status()
    assert raised.value.unreachable and "99999" in str(raised.value)


def test_the_guard_probe_through_a_proxy_is_left_to_mlflow(monkeypatch):
    """A direct connection says nothing of an address that a proxy reaches: MLflow's own request,
    through the proxy, does (here the proxy itself does not answer)."""
    for name in ("NO_PROXY", "no_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")
    client = RegistryClient(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(MlflowError) as raised:
        client.guard_status()
    assert raised.value.unreachable and "ProxyError" in str(raised.value)
