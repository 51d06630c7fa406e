"""MLflow tracking against a real `mlflow server` on 127.0.0.1 and the embedded SQLite store,
and what a researcher sees of it in the MLflow UI (headless Chromium)."""

import csv
import json
import os
import re
import shlex
import signal
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from lth.plan import Plan
from lth.plan.layout import RunKey
from lth.store import tracking

from conftest import missing_tool, typed
from test_readme import blocks
from test_workflow import TINY, snakemake, write_config

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]


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


def store_runs(uri, experiment):
    """(training runs, the seeds' parent runs by seed) of an MLflow experiment."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id], max_results=1000)
    parents = {r.data.tags["seed"]: r for r in runs if r.data.tags.get(tracking.GROUP_TAG) == "seed"}
    assert len(parents) == len([r for r in runs if tracking.GROUP_TAG in r.data.tags])  # one per seed
    return [r for r in runs if tracking.GROUP_TAG not in r.data.tags], parents


def assert_grouped_by_seed(training, parents):
    """Each training run is a child of its seed's parent run `seed<S>`, which spans its children."""
    assert set(parents) == {r.data.tags["seed"] for r in training}
    for seed, parent in parents.items():
        children = [r for r in training if r.data.tags["seed"] == seed]
        assert parent.info.run_name == f"seed{seed}" and parent.info.status == "FINISHED"
        assert all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in children)
        assert parent.info.start_time <= min(r.info.start_time for r in children)
        assert parent.info.end_time == max(r.info.end_time for r in children)


def assert_store_matches_summary(uri, experiment, summary_csv):
    """One run per summary row under its seed's parent run, one metric point per evaluation, tags
    naming seed/level/variant, the run's times those it trained at, a training experiment."""
    import json

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    runs, parents = store_runs(uri, experiment)
    rows = list(csv.DictReader(open(summary_csv)))
    assert len(runs) == len(rows)
    by_key = {(r.data.tags["seed"], r.data.tags["level"], r.data.tags["variant"]): r for r in runs}
    assert set(by_key) == {(r["seed"], r["level"], r["variant"]) for r in rows}
    assert_grouped_by_seed(runs, parents)
    root = Path(summary_csv).parent
    for (seed, level, variant), run in list(by_key.items())[:6]:
        record = json.loads(Plan.from_results(root).layout.metrics(RunKey(int(seed), int(level), variant)).read_text())
        history = client.get_metric_history(run.info.run_id, "test_accuracy")
        assert [m.step for m in history] == [c["iteration"] for c in record["curves"]]
        assert [m.value for m in history] == [c["test_accuracy"] for c in record["curves"]]
        assert run.info.status == "FINISHED" and run.data.tags["experiment"] == experiment
        assert run.info.run_name == ("dense" if level == "0" else f"level{int(level):02d}-{variant}")
        assert (run.info.start_time, run.info.end_time) == (int(record["times"]["start"] * 1000),
                                                            int(record["times"]["end"] * 1000))
        assert {"config_hash", "git_commit", "dataset_sha256", "torch_version", "device"} <= set(run.data.tags)
        assert run.data.params["training.lr"] == str(TINY["training"]["lr"])
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert artifacts == {"mask.safetensors", "metrics.json"}
    seed, level, variant = next(k for k in by_key if k[1] != "0")  # "show me level L of seed S": by tags
    found = client.search_runs([exp.experiment_id], f"tags.seed = '{seed}' and tags.level = '{level}'")
    assert {r.data.tags["variant"] for r in found} == {k[2] for k in by_key if k[:2] == (seed, level)}


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


def get_json(url, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data, {"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(request, timeout=30))


@pytest.mark.slow
def test_the_guides_browse_command_serves_the_experiments_runs_at_the_link_it_says_to_open(tmp_path):
    """docs/guides/mlflow.md's `mlflow ui` command as written (less `uv run`), in the folder where the workflow
    filled the default store, with `--port <free port>` appended (the guide's 5000 may be taken on this machine:
    the link is then read on that port): the link that the guide says to open (from mlflow-logged.txt) answers,
    and the REST API on that port serves the runs of its experiment, tagged as the summary's rows."""
    command = typed(blocks(ROOT / "docs" / "guides" / "mlflow.md")[0][0])
    exp = {**TINY, "seeds": [0], "variants": ["ticket"], "pruning": {**TINY["pruning"], "levels": 1}}
    run = snakemake(tmp_path, "--configfile", write_config(tmp_path, {"browse": exp}))
    assert run.returncode == 0, run.stdout + run.stderr
    logged = (tmp_path / "results" / "browse" / "mlflow-logged.txt").read_text()
    link = re.search(r"http://127\.0\.0\.1:5000/#/experiments/(\d+)/runs\?workflowType=machine_learning\S*", logged)
    assert link, logged
    port = free_port()
    page, exp_id = link.group(0).replace(":5000/", f":{port}/"), link.group(1)
    api = f"http://127.0.0.1:{port}/api/2.0/mlflow"
    log = open(tmp_path / "ui.log", "w")
    ui = subprocess.Popen([*shlex.split(command), "--port", str(port)], cwd=tmp_path, stdout=log,
                          stderr=subprocess.STDOUT, env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"},
                          start_new_session=True)
    try:
        deadline = time.time() + 300  # a loaded machine: importing mlflow and starting its workers takes a while
        while True:
            try:
                html = urllib.request.urlopen(page, timeout=10).read().decode()  # the #/... part stays in the browser
                break
            except OSError:
                assert ui.poll() is None, (command, (tmp_path / "ui.log").read_text()[-3000:])
                assert time.time() < deadline, f"{command} did not answer {page} within 300 s"
                time.sleep(0.5)
        assert "mlflow" in html.lower()
        assert get_json(f"{api}/experiments/get?experiment_id={exp_id}")["experiment"]["name"] == "browse"
        runs = get_json(f"{api}/runs/search", {"experiment_ids": [exp_id], "max_results": 1000})["runs"]
        tags = [{t["key"]: t["value"] for t in r["data"]["tags"]} for r in runs]
        rows = list(csv.DictReader(open(tmp_path / "results" / "browse" / "summary.csv")))
        assert sorted((t["seed"], t["level"], t["variant"]) for t in tags if tracking.GROUP_TAG not in t) == \
               sorted((r["seed"], r["level"], r["variant"]) for r in rows)
        assert [r["info"]["run_name"] for r, t in zip(runs, tags) if t.get(tracking.GROUP_TAG) == "seed"] == ["seed0"]
    finally:
        os.killpg(ui.pid, signal.SIGTERM)  # the UI and its workers
        try:
            ui.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(ui.pid, signal.SIGKILL)
            ui.wait(timeout=10)
        log.close()


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
    assert client.get_experiment_by_name("par").tags["mlflow.experimentKind"] == "custom_model_development"
    runs, parents = store_runs(uri, "par")
    assert len(runs) == 8 and all(r.info.status == "FINISHED" for r in runs)
    assert sorted(r.data.tags["seed"] for r in runs) == [str(s) for s in range(8)]
    assert_grouped_by_seed(runs, parents)


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
        runs, parents = store_runs(uri, "down")
        assert [r.data.tags["variant"] for r in runs] == ["dense"]
        assert_grouped_by_seed(runs, parents)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.slow
def test_a_race_that_made_two_parent_runs_costs_no_job_and_lth_track_merges_them(tmp_path, context, capsys):
    from mlflow.tracking import MlflowClient

    ctx = context({"variants": ["ticket"], "pruning": {"levels": 1}}, name="race")
    for job in ctx.plan.jobs():
        ctx.run(job)
    uri = f"sqlite:///{tmp_path}/race.db"
    client = MlflowClient(tracking_uri=uri)
    exp_id = client.create_experiment("race")  # made by an older lth: not tagged as training
    dense, ticket = ctx.plan.runs()
    tracking.log_live(uri, ctx.plan, dense)  # makes seed 0's parent run
    # a parallel job that found no parent either made its own (starting earlier) and logs under it
    early = client.create_run(exp_id, start_time=1000, run_name="seed0", tags={tracking.GROUP_TAG: "seed", "seed": "0"})
    tracking.log_live(uri, ctx.plan, ticket)
    assert "tracking failed" not in capsys.readouterr().err
    parent_of = {r.data.tags["variant"]: r.data.tags["mlflow.parentRunId"]
                 for r in client.search_runs([exp_id], "tags.level != ''")}
    assert parent_of["ticket"] == early.info.run_id != parent_of["dense"]
    assert tracking.sync(uri, ctx.plan) == (0, 2, 0)  # merges the parents; both runs were there already
    runs, parents = store_runs(uri, "race")
    assert len(runs) == 2 and parents["0"].info.run_id == early.info.run_id
    assert_grouped_by_seed(runs, parents)
    assert client.get_experiment(exp_id).tags["mlflow.experimentKind"] == "custom_model_development"


def chromium(profile):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}",
                 "--window-size=1600,1000"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)


def wait_for(driver, what, condition, timeout=300):
    """Poll `condition` until it is truthy (the UI is a React app that renders when it can)."""
    from selenium.common.exceptions import WebDriverException

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            value = condition()
            if value:
                return value
        except WebDriverException:  # not there yet, or re-rendered under our hands
            pass
        time.sleep(0.5)
    pytest.fail(f"the MLflow UI did not show {what} within {timeout} s; it shows:\n"
                + driver.execute_script("return document.body.innerText")[:3000])


def screenshot(driver, path: Path) -> None:
    """A full-page PNG, kept in /tmp/mlflow-screenshots/ too for a look by eye."""
    import base64

    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}})
    path.write_bytes(base64.b64decode(shot["data"]))
    keep = Path("/tmp/mlflow-screenshots")
    keep.mkdir(exist_ok=True)
    shutil.copy(path, keep / path.name)


@pytest.mark.slow
def test_the_mlflow_ui_shows_the_runs_grouped_by_seed_in_its_training_view(tmp_path, server, context):
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        missing_tool("needs Debian's chromium and chromium-driver (`apt-get install chromium chromium-driver`)")
    from mlflow.tracking import MlflowClient
    from selenium.webdriver.common.by import By

    ctx = context({"seeds": [0, 1], "variants": ["ticket", "random_prune"]}, name="ui")
    for job in ctx.plan.jobs():
        ctx.run(job)
    assert tracking.sync(server, ctx.plan) == (10, 0, 0)
    exp_id = MlflowClient(tracking_uri=server).get_experiment_by_name("ui").experiment_id

    def names():
        """The run names of the table's rows, top to bottom."""
        rows = [(int(row.get_attribute("row-index")), row.find_elements(By.CSS_SELECTOR, "a[href*='/runs/']"))
                for row in driver.find_elements(By.CSS_SELECTOR, ".ag-row[row-index]")]
        return [links[0].text for _, links in sorted(rows, key=lambda row: row[0]) if links]  # the name column

    with tempfile.TemporaryDirectory() as profile:
        driver = chromium(profile)
        try:
            driver.get(tracking.ui_url(server, exp_id))
            wait_for(driver, "the seeds' parent runs", lambda: {"seed0", "seed1"} <= set(names()))
            for seed in ("seed0", "seed1"):  # the tree starts collapsed: open each seed
                wait_for(driver, f"{seed}'s expand button", lambda: driver.find_element(
                    By.XPATH, f"//div[@role='gridcell'][.//a[normalize-space()='{seed}']]//button")).click()
            shown = wait_for(driver, "every run", lambda: (lambda n: n if len(n) == 12 else None)(names()))
            text = driver.execute_script("document.activeElement.blur(); return document.body.innerText")
            url = driver.current_url
            screenshot(driver, tmp_path / "mlflow-runs.png")
        finally:
            driver.quit()
    # the classic training view: the runs table, not the GenAI overview of traces
    assert f"/experiments/{exp_id}/runs" in url and "workflowType=machine_learning" in url
    assert "Run Name" in text and "Duration" in text and "Model registry" in text
    assert "Token Usage" not in text and "Observability" not in text
    # each seed's parent row, then its five training runs in the order they trained (the chain, then its controls)
    order = ["dense", "level01-ticket", "level02-ticket", "level01-random_prune", "level02-random_prune"]
    assert shown == ["seed0", *order, "seed1", *order], shown
