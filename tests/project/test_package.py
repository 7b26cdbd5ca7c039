"""Quorum installed from its wheel runs without the checkout.

The wheel is built from a copy of the sources, installed with the demo's locked dependencies into
a virtualenv of its own, and started from a directory outside the checkout with nothing of the
test run's environment: `django-admin check` and `migrate` pass, the pages, mails and static files
come from inside the installed package, the `quorum` CLI starts, and Quorum's state (the default
var/) goes to the working directory, never into site-packages.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
UV = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
# What would put the checkout, or the test run's virtualenv, on the installed Quorum's path.
LEAKS = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "DJANGO_SETTINGS_MODULE")

# Run by the installed python: where Quorum, its templates and static files come from, and what it
# serves (its sign-in page and stylesheet, through the URLconf, middleware and WhiteNoise).
INSPECT = """
import json, sysconfig
import django
django.setup()
from django.conf import settings
from django.contrib.staticfiles import finders
from django.template.loader import get_template
from django.test import Client
import quorum
client = Client()
login = client.get("/accounts/login/")
css = client.get("/static/quorum.css")
print(json.dumps({
    "purelib": sysconfig.get_paths()["purelib"],
    "quorum": quorum.__file__,
    "var_dir": str(settings.VAR_DIR),
    "templates": {
        name: get_template(name).origin.name
        for name in ("base.html", "reviews/inbox.html", "emails/decided.txt",
                     "admin/base_site.html", "django_rq/jobs.html")
    },
    "static": {
        name: finders.find(name) for name in ("quorum.css", "charts.js", "plotly/plotly.min.js")
    },
    "login": [login.status_code, 'href="/static/quorum.css"' in login.content.decode()],
    "css": [
        css.status_code,
        b"".join(css.streaming_content) == open(finders.find("quorum.css"), "rb").read(),
    ],
}))
"""


def run(
    *command: str | Path, env: dict[str, str], cwd: Path, timeout: int = 120
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, f"{command}:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> SimpleNamespace:
    """A virtualenv with the locked dependencies and Quorum's wheel, and a working directory
    outside the checkout with the environment a Quorum process there gets."""
    assert UV, "uv is not installed beside the test run's python (make install)"
    tmp = tmp_path_factory.mktemp("package")
    # A copy, so that setuptools' build/ and egg-info never land in the checkout.
    source = tmp / "source"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(".*", "__pycache__", "*.egg-info", "var", "build", "dist"),
    )
    installer_env = {name: value for name, value in os.environ.items() if name not in LEAKS}
    build = (UV, "build", "--wheel", "--no-build-isolation", "--python", sys.executable)
    run(*build, "--out-dir", tmp / "dist", source, env=installer_env, cwd=tmp)
    (wheel,) = (tmp / "dist").glob("quorum-*.whl")

    venv = tmp / "venv"
    run(UV, "venv", "--python", sys.executable, venv, env=installer_env, cwd=tmp)
    python = venv / "bin" / "python"
    install = (UV, "pip", "install", "--python", python)
    lock = ROOT / "requirements" / "demo.txt"
    run(*install, "--require-hashes", "-r", lock, env=installer_env, cwd=tmp, timeout=480)
    run(*install, "--no-deps", wheel, env=installer_env, cwd=tmp)

    work = tmp / "work"
    work.mkdir()
    env = {
        "PATH": f"{venv / 'bin'}{os.pathsep}/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": str(tmp),
        "DATABASE_URL": f"sqlite:///{work / 'quorum.sqlite3'}",
        # Nothing that answers: no one's Redis or MLflow is touched, and the checks that probe
        # them have nothing to say.
        "REDIS_URL": "redis://127.0.0.1:9/0",
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:9",
    }
    return SimpleNamespace(python=python, bin=venv / "bin", work=work, env=env)


def site_packages(installed: SimpleNamespace) -> Path:
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    result = run(installed.python, "-c", code, env=installed.env, cwd=installed.work)
    return Path(result.stdout.strip())


def test_an_installed_quorum_checks_and_migrates_outside_the_checkout(installed):
    admin = installed.bin / "django-admin"
    settings = ("--settings", "quorum.settings")

    check = run(admin, "check", *settings, env=installed.env, cwd=installed.work)
    migrate = run(admin, "migrate", "--noinput", *settings, env=installed.env, cwd=installed.work)

    assert "System check identified no issues" in check.stdout
    assert "Applying identity." in migrate.stdout and "Applying reviews." in migrate.stdout
    assert (installed.work / "quorum.sqlite3").is_file()
    # The default var/ is the working directory's, never site-packages'.
    assert (installed.work / "var" / "static").is_dir()
    assert not (site_packages(installed) / "var").exists()


def test_an_installed_quorum_serves_its_own_templates_and_static_files(installed):
    env = {**installed.env, "DJANGO_SETTINGS_MODULE": "quorum.settings"}
    run(installed.bin / "django-admin", "migrate", "--noinput", env=env, cwd=installed.work)

    result = run(installed.python, "-c", INSPECT, env=env, cwd=installed.work)

    found = json.loads(result.stdout)
    package = Path(found["purelib"]) / "quorum"
    assert Path(found["quorum"]).parent == package, "Quorum was imported from outside the venv"
    assert found["var_dir"] == str(installed.work / "var")
    # Quorum's templates, its overrides of the admin's and django_rq's included, are the package's.
    for name, origin in found["templates"].items():
        assert Path(origin) == package / "templates" / name
    assert Path(found["static"]["quorum.css"]) == package / "static" / "quorum.css"
    assert Path(found["static"]["charts.js"]) == package / "static" / "charts.js"
    assert found["static"]["plotly/plotly.min.js"], "plotly.js is not in the installed plotly"
    assert found["login"] == [200, True]
    assert found["css"] == [200, True]
    assert not (Path(found["purelib"]) / "var").exists()


def test_the_installed_quorum_cli_starts(installed):
    result = run(installed.bin / "quorum", "--help", env=installed.env, cwd=installed.work)

    assert "usage: quorum" in result.stdout
