"""MLflow tracking against a real `mlflow server` on 127.0.0.1 and the embedded SQLite store."""

import csv
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from test_workflow import TINY, snakemake, write_config

from lth.layout import RunKey
from lth.plan import Plan

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(tmp_path, port):
    """A real tracking server process; waits (bounded) until it answers /health."""
    proc = subprocess.Popen([str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
                             "--backend-store-uri", f"sqlite:///{tmp_path}/server.db",
                             "--artifacts-destination", str(tmp_path / "server-artifacts"), "--workers", "1"],
                            stdout=subprocess.DEVNULL, stderr=open(tmp_path / "server.log", "w"),
                            start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).status == 200:
                return proc
        except OSError:
            time.sleep(0.5)
        assert proc.poll() is None, (tmp_path / "server.log").read_text()[-2000:]
    proc.kill()
    pytest.fail("mlflow server did not answer /health within 120 s")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    proc = start_server(tmp, port)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=30)


def assert_store_matches_summary(uri, experiment, summary_csv):
    """One run per summary row, one metric point per evaluation, tags naming seed/level/variant."""
    import json

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    rows = list(csv.DictReader(open(summary_csv)))
    assert len(runs) == len(rows)
    by_key = {(r.data.tags["seed"], r.data.tags["level"], r.data.tags["variant"]): r for r in runs}
    assert set(by_key) == {(r["seed"], r["level"], r["variant"]) for r in rows}
    root = Path(summary_csv).parent
    for (seed, level, variant), run in list(by_key.items())[:6]:
        record = json.loads(Plan.from_results(root).layout.metrics(RunKey(int(seed), int(level), variant)).read_text())
        history = client.get_metric_history(run.info.run_id, "test_accuracy")
        assert [m.step for m in history] == [c["iteration"] for c in record["curves"]]
        assert [m.value for m in history] == [c["test_accuracy"] for c in record["curves"]]
        assert run.info.status == "FINISHED" and run.data.tags["experiment"] == experiment
        assert {"config_hash", "git_commit", "dataset_sha256", "torch_version", "device"} <= set(run.data.tags)
        assert run.data.params["training.lr"] == str(TINY["training"]["lr"])
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert artifacts == {"mask.safetensors", "metrics.json"}


@pytest.mark.slow
def test_workflow_with_live_tracking_to_a_real_server(tmp_path, server):
    exp = {**TINY, "seeds": [0], "variants": ["ticket", "random_prune"]}
    config = write_config(tmp_path, {"live": exp}, tracking={"uri": server, "live": True})
    run = snakemake(tmp_path, "--configfile", config)
    assert run.returncode == 0, run.stdout + run.stderr
    logs = "".join(p.read_text() for p in (tmp_path / "results" / "live" / "logs").glob("*.log"))
    assert "tracking failed" not in logs
    # every run was logged live by its job: the track step found nothing left to log
    assert "logged 0 runs" in (tmp_path / "results" / "live" / "mlflow-logged.txt").read_text()
    assert_store_matches_summary(server, "live", tmp_path / "results" / "live" / "summary.csv")


@pytest.mark.slow
def test_workflow_logs_to_the_embedded_store_by_default(tmp_path):
    exp = {**TINY, "seeds": [0], "variants": ["ticket", "reinit"]}
    run = snakemake(tmp_path, "--configfile", write_config(tmp_path, {"embedded": exp}))
    assert run.returncode == 0, run.stdout + run.stderr
    assert (tmp_path / "mlflow.db").exists()
    assert_store_matches_summary(f"sqlite:///{tmp_path}/mlflow.db", "embedded",
                                 tmp_path / "results" / "embedded" / "summary.csv")


def _lth(*args):
    return subprocess.Popen([str(BIN / "lth"), *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


@pytest.mark.slow
def test_eight_parallel_jobs_log_to_one_fresh_store(tmp_path, data_dir, settings_file):
    uri = f"sqlite:///{tmp_path}/fresh.db"
    results = tmp_path / "results" / "par"
    prepare = _lth("track", "--prepare", "--experiment", "par", "--tracking-uri", uri)
    assert prepare.wait(timeout=300) == 0, prepare.stderr.read()
    settings = settings_file({"training": {"iterations": 100}, "model": {"options": {"hidden": 16}}})
    jobs = [_lth("train", "--settings", settings, "--results", results, "--seed", seed, "--data-dir", data_dir,
                 "--threads", 1, "--track", uri) for seed in range(8)]
    for job in jobs:
        assert job.wait(timeout=600) == 0
        err = job.stderr.read()
        assert "tracking failed" not in err, err
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("par").experiment_id])
    assert len(runs) == 8 and all(r.info.status == "FINISHED" for r in runs)
    assert sorted(r.data.tags["seed"] for r in runs) == [str(s) for s in range(8)]


@pytest.mark.slow
def test_job_with_the_server_down_finishes_and_the_relog_command_fills_the_store(tmp_path, data_dir, settings_file):
    port = free_port()
    uri = f"http://127.0.0.1:{port}"  # nothing listens there yet: the server is down
    results = tmp_path / "results" / "down"
    small = {"training": {"iterations": 100}, "model": {"options": {"hidden": 16}}}
    settings = settings_file(small)
    env = {**os.environ, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}
    job = subprocess.run([str(BIN / "lth"), "train", "--settings", str(settings), "--results", str(results),
                          "--seed", "0", "--data-dir", str(data_dir), "--track", uri],
                         capture_output=True, text=True, timeout=600, env=env)
    assert job.returncode == 0, job.stderr
    assert "MLflow tracking failed" in job.stderr and "lth track" in job.stderr
    assert Plan.from_results(results).layout.metrics(RunKey(0, 0, "dense")).exists()
    down = subprocess.run([str(BIN / "lth"), "track", "--results", str(results), "--tracking-uri", uri],
                          capture_output=True, text=True, timeout=600, env=env)
    assert down.returncode == 2 and "run this command again" in down.stderr
    proc = start_server(tmp_path, port)
    try:
        relog = subprocess.run([str(BIN / "lth"), "track", "--results", str(results), "--tracking-uri", uri],
                               capture_output=True, text=True, timeout=600)
        assert relog.returncode == 0, relog.stderr
        assert "logged 1 runs" in relog.stdout and "not finished" in relog.stdout  # the levels not trained
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=uri)
        runs = client.search_runs([client.get_experiment_by_name("down").experiment_id])
        assert [r.data.tags["variant"] for r in runs] == ["dense"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
