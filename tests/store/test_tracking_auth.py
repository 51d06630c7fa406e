"""`lth track` against a server that demands credentials. MLflow's own basic-auth app needs Flask-WTF,
which this environment lacks, so the server here is a stand-in on 127.0.0.1 that answers every request
401 and records what it was sent: the client side (the real MLflow client) is what is tested: it sends
the credentials of the environment, a refusal is one line saying where credentials belong, and no
credential lands in a file under the project."""

import base64
import http.server
import threading

import pytest

from lth.cli import main
from lth.plan.job import Job
from lth.store.tracking import shown

SECRET = "s3cret-Pa55"


@pytest.fixture
def refusing_server():
    seen = []

    class Refuse(http.server.BaseHTTPRequestHandler):
        def refuse(self):
            seen.append(self.headers.get("Authorization"))
            body = b"You are not authenticated."
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="mlflow"')
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PATCH = do_DELETE = refuse

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()


def test_track_sends_the_environments_credentials_and_a_refusal_is_one_line(context, refusing_server, monkeypatch,
                                                                            capsys, tmp_path):
    uri, seen = refusing_server
    ctx = context({"training": {"iterations": 50}})
    ctx.run(Job("dense", 0))
    results = str(ctx.plan.layout.root)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "ann")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", SECRET)
    assert main(["track", "--results", results, "--tracking-uri", uri]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"MLflow server {uri} refused the request (HTTP 401)" in err, err
    assert "MLFLOW_TRACKING_USERNAME" in err and "never in the config" in err and SECRET not in err
    assert f"Basic {base64.b64encode(f'ann:{SECRET}'.encode()).decode()}" in seen  # sent from the environment
    written = [p for p in tmp_path.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert written == []


def test_a_uri_is_shown_without_its_credentials():
    assert shown("https://ann:pw@login1:5000/x") == "https://login1:5000/x"
    assert shown("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert shown("sqlite:////tmp/mlflow.db") == "sqlite:////tmp/mlflow.db"
