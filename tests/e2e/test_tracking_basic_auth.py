"""`lth track` against a real `mlflow server --app-name basic-auth` on 127.0.0.1: with a user's
credentials from the environment the runs are logged; without them, or with a wrong password, one line
says where credentials belong; no credential is written under the project. MLflow's auth app needs
Flask-WTF: the project depends on `mlflow[auth]` for it."""

import base64
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from lth.plan.job import Job

from test_tracking_workflow import free_port

BIN = Path(sys.executable).parent
ADMIN, ADMIN_PASSWORD = "admin", "adm1n-Passw0rd-for-tests"
USER, PASSWORD = "ann", "ann-S3cret-Passw0rd"


def _call(uri, path, user, password, body=None):
    request = urllib.request.Request(f"{uri}{path}", data=None if body is None else json.dumps(body).encode(),
                                     method="GET" if body is None else "POST")
    request.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status


@pytest.fixture
def auth_server(tmp_path):
    outside = tmp_path / "server"  # the credentials file and stores: outside the project
    outside.mkdir()
    ini = outside / "basic_auth.ini"
    ini.write_text(f"[mlflow]\ndefault_permission = NO_PERMISSIONS\ndatabase_uri = sqlite:///{outside}/auth.db\n"
                   f"admin_username = {ADMIN}\nadmin_password = {ADMIN_PASSWORD}\n"
                   f"authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
    ini.chmod(0o600)
    port = free_port()
    env = {**os.environ, "MLFLOW_AUTH_CONFIG_PATH": str(ini), "MLFLOW_FLASK_SERVER_SECRET_KEY": "tests-only-key"}
    proc = subprocess.Popen([str(BIN / "mlflow"), "server", "--app-name", "basic-auth", "--host", "127.0.0.1",
                             "--port", str(port), "--backend-store-uri", f"sqlite:///{outside}/mlflow.db",
                             "--artifacts-destination", str(outside / "artifacts"), "--workers", "1"],
                            stdout=subprocess.DEVNULL, stderr=open(outside / "server.log", "w"), env=env,
                            start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    while True:
        try:
            if urllib.request.urlopen(f"{uri}/health", timeout=2).status == 200:
                break
        except OSError:
            pass
        assert proc.poll() is None, (outside / "server.log").read_text()[-3000:]
        assert time.time() < deadline, "the basic-auth server did not answer /health in 180 s"
        time.sleep(0.5)
    assert _call(uri, "/api/2.0/mlflow/users/create", ADMIN, ADMIN_PASSWORD,
                 {"username": USER, "password": PASSWORD}) == 200
    yield uri
    proc.terminate()
    proc.wait(timeout=30)


@pytest.mark.slow
def test_track_logs_with_the_environments_credentials_and_refuses_without(auth_server, context, tmp_path):
    ctx = context({"training": {"iterations": 50}})
    ctx.run(Job("dense", 0))
    results = ctx.plan.layout.root
    project = tmp_path / "project"
    project.mkdir()

    def track(**credentials):
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING_")}
        env.update(credentials, MLFLOW_HTTP_REQUEST_MAX_RETRIES="0")
        return subprocess.run([str(BIN / "lth"), "track", "--results", str(results), "--tracking-uri", auth_server],
                              capture_output=True, text=True, timeout=600, env=env, cwd=project)

    for credentials in ({}, {"MLFLOW_TRACKING_USERNAME": USER, "MLFLOW_TRACKING_PASSWORD": "wrong"}):
        refused = track(**credentials)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        line = refused.stderr.strip()
        assert "\n" not in line and f"MLflow server {auth_server} refused the request (HTTP 401)" in line, line
        assert "MLFLOW_TRACKING_USERNAME" in line
    logged = track(MLFLOW_TRACKING_USERNAME=USER, MLFLOW_TRACKING_PASSWORD=PASSWORD)
    assert logged.returncode == 0, logged.stderr[-3000:]
    assert "logged 1 runs" in logged.stdout
    with pytest.raises(urllib.error.HTTPError) as e:  # the server holds it, for its users only
        urllib.request.urlopen(f"{auth_server}/api/2.0/mlflow/experiments/get-by-name?experiment_name=exp", timeout=30)
    assert e.value.code == 401
    assert _call(auth_server, "/api/2.0/mlflow/experiments/get-by-name?experiment_name=exp", USER, PASSWORD) == 200
    for folder in (results, project):
        leaked = [p for p in folder.rglob("*") if p.is_file() and PASSWORD.encode() in p.read_bytes()]
        assert leaked == []
