"""MLflow tracking: every training run (seed x level x variant) is one MLflow run.

Grouping: one MLflow experiment per config experiment (same name), tagged as a model-training
experiment. In it, one parent run per seed (`seed2`) holds that seed's training runs as nested
children named by what differs within the seed (`dense`, `level07-ticket`,
`level04-ticket_transfer-on-cifar10`), so the UI's tree stays short. Each training run is tagged `seed`,
`level`, `variant`, `chain`, so the UI's search `tags.seed = '2' and tags.level = '7'` answers
"show level 7 of seed 2". Tags also carry the settings fingerprint (`config_hash`), git commit,
dataset checksum, torch version and device. A run's start and end are when it trained
(metrics.json `times`), not when it was logged.

Runs are logged from their metrics.json, after training: by the training job itself when
tracking is live, and by `lth track` (the workflow's `track` step), which logs every finished
run the store does not hold yet. Importing mlflow costs 5-15 s here, so it is imported only
inside these functions; a training job without live tracking never pays it.
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path
from typing import Any

from lth.store.results import read_record

DEFAULT_STORE = "mlflow.db"  # under the project folder: the embedded SQLite store
# Where MLflow 3 keeps an experiment's kind: its UI's kind selector writes it, and a UI without
# 3.17's GenAI / Model training switch opens the experiment in that kind's view (see ui_url).
KIND_TAG, TRAINING_KIND = "mlflow.experimentKind", "custom_model_development"
GROUP_TAG = "lth.group"  # "seed" on a seed's parent run; training runs carry `lth.run_key` instead
CURVE_METRICS = ("lr", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "test_loss", "test_accuracy")


def resolve_uri(uri: str | None = None, base: str | Path = ".") -> str:
    """The configured URI, else $MLFLOW_TRACKING_URI, else the embedded SQLite store under `base`."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    return f"sqlite:///{(Path(base) / DEFAULT_STORE).resolve()}"


def shown(uri: str) -> str:
    """`uri` without a user name or password (for messages and logs: no credential is written)."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(uri)
        if parts.username is None and parts.password is None:
            return uri
        return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
    except ValueError:
        return uri.rsplit("@", 1)[-1]


def refusal(exc: BaseException) -> str | None:
    """Why a tracking server refused a request for want of credentials or rights ("HTTP 401"), or None
    for any other failure."""
    code = getattr(exc, "get_http_status_code", lambda: None)()
    text = str(exc)
    for status, words in ((401, ("Unauthorized", "UNAUTHENTICATED")), (403, ("Permission denied",
                                                                              "PERMISSION_DENIED"))):
        # the status as a word of its own: a port 4010 or a run id 9403ab is not a refusal
        if code == status or re.search(rf"\b{status}\b", text) or any(w in text for w in words):
            return f"HTTP {status}"
    return None


def _client(uri: str):
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def experiment_id(client, name: str, uri: str) -> str:
    """The MLflow experiment of config experiment `name`, created if missing, tagged as training.

    For the embedded store, artifacts go beside the database (mlartifacts/<name>). An experiment
    logged before the kind tag existed gets it here (a kind someone chose in the UI is kept).
    """
    found = client.get_experiment_by_name(name)
    if found is None:
        location = None
        if uri.startswith("sqlite:///"):
            location = (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts" / name).resolve().as_uri()
        try:
            return client.create_experiment(name, artifact_location=location, tags={KIND_TAG: TRAINING_KIND})
        except Exception:  # created meanwhile by a parallel job: use that one
            found = client.get_experiment_by_name(name)
            if found is None:
                raise
    if KIND_TAG not in found.tags:
        client.set_experiment_tag(found.experiment_id, KIND_TAG, TRAINING_KIND)
    return found.experiment_id


def ui_url(uri: str, exp_id: str) -> str | None:
    """The experiment's runs page on tracking server `uri` (None for a store that is no server),
    oldest run first, so that each seed's runs read in training order.

    MLflow 3.17's UI ignores the kind tag and opens every experiment in the view of its own
    GenAI / Model training switch (GenAI until a user flips it); `workflowType` picks training.
    """
    if not uri.startswith(("http://", "https://")):
        return None
    return (f"{uri.rstrip('/')}/#/experiments/{exp_id}/runs?workflowType=machine_learning"
            "&orderByKey=attributes.start_time&orderByAsc=true")


def prepare(uri: str, names: list[str]) -> dict[str, str]:
    """Create the store and the experiments once, before parallel jobs start.

    Many processes opening a fresh SQLite store at once race on its schema migration (NOTES.md).
    """
    client = _client(uri)
    return {name: experiment_id(client, name, uri) for name in names}


def run_key(record: dict[str, Any]) -> str:
    p = record["provenance"]
    target = f"/{record['target']}" if record.get("target") else ""
    return f"{p['settings_fingerprint']}/{record['seed']}/{record['level']}/{record['variant']}{target}"


def _flatten(prefix: str, value: Any, out: dict[str, str]) -> dict[str, str]:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = str(value)[:6000]
    return out


def params_of(plan) -> dict[str, Any]:
    """The settings logged as each run's params: what determines a run, not which runs exist."""
    s = plan.settings.thaw()
    return {**{k: v for k, v in s.items() if k not in ("seeds", "variants", "reference", "transfer", "analyses")},
            "pruning": {k: v for k, v in s["pruning"].items() if k != "levels"}}


def run_name(record: dict[str, Any]) -> str:
    """A training run's name under its seed's parent run: what differs within the seed."""
    target = f"-on-{record['target']}" if record.get("target") else ""
    level = f"level{record['level']:02d}-" if record["level"] else ""  # level 0: the dense run
    return f"{level}{record['variant']}{target}"


def run_times(record: dict[str, Any]) -> tuple[int, int]:
    """When the run trained (start, end) in ms; now for a record from before `times` existed."""
    times, now = record.get("times") or {}, time.time()
    return int(times.get("start", now) * 1000), int(times.get("end", now) * 1000)


def _parents(client, exp_id: str, seed: int | str | None = None) -> list:
    """The seed parent runs of an experiment (of one seed), oldest first."""
    query = f"tags.`{GROUP_TAG}` = 'seed'" + ("" if seed is None else f" and tags.seed = '{seed}'")
    return sorted(client.search_runs([exp_id], query, max_results=1000),
                  key=lambda run: (run.info.start_time, run.info.run_id))


def parent_run(client, exp_id: str, experiment: str, seed: int, start_ms: int):
    """Seed `seed`'s parent run, created by the first run of the seed logged.

    Two parallel jobs of one seed may both find none and create one each: neither fails (each
    uses the oldest it then sees), and `lth track` merges the two afterwards (merge_parents).
    """
    found = _parents(client, exp_id, seed)
    if not found:
        client.create_run(exp_id, start_time=start_ms, run_name=f"seed{seed}",
                          tags={GROUP_TAG: "seed", "seed": str(seed), "experiment": experiment})
        found = _parents(client, exp_id, seed)
    return found[0]


def _extend(client, parent, end_ms: int) -> None:
    """Finish a parent run at its latest child's end, so that it spans its seed's training."""
    end = max(end_ms, parent.info.end_time or 0)
    if parent.info.status != "FINISHED" or end != parent.info.end_time:
        client.set_terminated(parent.info.run_id, "FINISHED", end_time=end)


def merge_parents(client, exp_id: str) -> None:
    """Keep one parent run per seed: move the children of a duplicate to the oldest, delete it."""
    by_seed: dict[str, list] = {}
    for parent in _parents(client, exp_id):
        by_seed.setdefault(parent.data.tags["seed"], []).append(parent)
    for keep, *extra in by_seed.values():
        for parent in extra:
            children = client.search_runs([exp_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'",
                                          max_results=1000)
            for child in children:
                client.set_tag(child.info.run_id, "mlflow.parentRunId", keep.info.run_id)
            client.delete_run(parent.info.run_id)
        if extra:
            _extend(client, keep, max(parent.info.end_time or 0 for parent in extra))


def log_run(client, exp_id: str, plan, key) -> str:
    """Log one finished training run (params, per-evaluation metrics, tags, artifacts) under its
    seed's parent run; return its id."""
    from mlflow.entities import Metric, Param

    record = read_record(plan.layout.metrics(key))
    p = record["provenance"]
    experiment = plan.experiment
    start, end = run_times(record)
    parent = parent_run(client, exp_id, experiment, record["seed"], start)
    tags = {"experiment": experiment, "seed": record["seed"], "level": record["level"],
            "variant": record["variant"], "target": record.get("target", ""),
            "chain": "transfer" if key.target else (plan.variant(key).chain or "dense"),
            "config_hash": p["settings_fingerprint"], "git_commit": p["git_commit"],
            "dataset_sha256": p["dataset_sha256"], "torch_version": p["torch_version"], "device": p["device"],
            "lth_version": p["lth_version"], "lth.run_key": run_key(record),
            "mlflow.parentRunId": parent.info.run_id}
    run = client.create_run(exp_id, start_time=start, run_name=run_name(record),
                            tags={k: str(v) for k, v in tags.items()})
    run_id = run.info.run_id
    params = _flatten("", params_of(plan), {})
    params.update(seed=str(record["seed"]), level=str(record["level"]), variant=record["variant"])
    metrics = [Metric(key, float(point[key]), end, int(point["iteration"]))
               for point in record["curves"] for key in CURVE_METRICS if point.get(key) is not None]
    metrics += [Metric("weights_remaining", float(record["weights_remaining"]), end, int(point["iteration"]))
                for point in record["curves"]]
    metrics += [Metric(f"final.{k}", float(v), end, 0) for k, v in record["summary"].items()
                if isinstance(v, (int, float)) and v is not None]
    items = [Param(k, v) for k, v in sorted(params.items())]
    while items or metrics:  # MLflow takes at most 100 params and 1,000 entities in all per batch
        batch, items = items[:100], items[100:]
        more, metrics = metrics[: 1000 - len(batch)], metrics[1000 - len(batch) :]
        client.log_batch(run_id, metrics=more, params=batch)
    for path in (plan.layout.mask(key), plan.layout.metrics(key)):
        client.log_artifact(run_id, str(path))
    client.set_terminated(run_id, "FINISHED", end_time=end)
    _extend(client, parent, end)
    return run_id


def logged_keys(client, exp_id: str) -> set[str]:
    """Run keys of the finished training runs an MLflow experiment holds (not the seeds' parent
    runs); half-logged runs are deleted (a job or `lth track` died while logging them) so that
    they are logged again, once."""
    keys, token = set(), None
    while True:
        page = client.search_runs([exp_id], max_results=1000, page_token=token)
        for run in page:
            key = run.data.tags.get("lth.run_key")
            if key is None:
                continue  # a seed's parent run
            if run.info.status == "FINISHED":
                keys.add(key)
            else:
                client.delete_run(run.info.run_id)
        token = page.token
        if not token:
            return keys


def log_live(uri: str, plan, key) -> None:
    """Log a run just trained; on failure say so loudly and go on (`lth track` re-logs it later)."""
    try:
        client = _client(uri)
        log_run(client, experiment_id(client, plan.experiment, uri), plan, key)
    except Exception as exc:  # tracking must never cost a finished training run
        print(f"lth: WARNING: MLflow tracking failed for {key} ({type(exc).__name__}: {exc}); "
              f"results are on disk; run `lth track` to log them later", file=sys.stderr, flush=True)


def sync(uri: str, plan) -> tuple[int, int, int]:
    """Log every finished run of the plan not yet in the store (and merge duplicate parent runs).

    Returns (newly logged, already there, not finished: no metrics.json yet).
    """
    client = _client(uri)
    exp_id = experiment_id(client, plan.experiment, uri)
    merge_parents(client, exp_id)
    have = logged_keys(client, exp_id)
    new = old = unfinished = 0
    for key in plan.runs():
        if not plan.layout.metrics(key).exists():
            unfinished += 1
        elif run_key(read_record(plan.layout.metrics(key))) in have:
            old += 1
        else:
            log_run(client, exp_id, plan, key)
            new += 1
    return new, old, unfinished
