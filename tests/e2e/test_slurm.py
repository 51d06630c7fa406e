"""Cluster submission through profiles/slurm (snakemake-executor-plugin-slurm), and preemption there.

- The sbatch commands the profile generates, recorded by stand-in SLURM commands (no cluster).
- The tiny workflow on a real one-machine SLURM cluster (munged, slurmctld, slurmd) that the test
  starts and stops; its summary must equal a local run's of the same config. A training job there
  signalled as SLURM preempts (`scancel --signal=TERM`) is retried and ends as an uninterrupted run.
"""

import csv
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from lth.plan import Job, plan_of
from lth.plan.layout import TENSORS_FILE, dataset_dir

from conftest import missing_tool, typed
from test_dvc import snapshot_project
from test_readme import blocks
from test_workflow import ENV_BIN, TINY, start_workflow

ROOT = Path(__file__).resolve().parents[2]
PROFILE = ROOT / "profiles" / "slurm"
VENV_PATH = f"{Path(sys.executable).parent}:{os.environ['PATH']}"  # jobs inherit PATH (sbatch --export=ALL)
# the tiny experiment of test_workflow.py with one level: 5 cluster jobs (fetch, 2 dense, level, controls), 4 deep
SMALL = {**TINY, "pruning": {**TINY["pruning"], "levels": 1}, "variants": ["ticket", "reinit", "random_prune"]}
# Overrides for the test cluster: its node has no GPU, it keeps no accounting database (the plugin
# must poll squeue, not sacct), and its jobs take seconds (poll soon instead of after 40 s).
CPU_ONLY_TEST_CLUSTER = ["--set-resources", "dense:gpu=0", "level:gpu=0", "controls:gpu=0", "--slurm-status-command",
                         "squeue",
                         "--slurm-init-seconds-before-status-checks", "5"]
# The same, as the site settings that docs/guides/slurm.md says a site writes into profiles/slurm/config.yaml
TEST_CLUSTER_SITE_SETTINGS = """
# the test cluster's site settings (tests/e2e/test_slurm.py)
set-resources:
  dense: {gpu: 0}
  level: {gpu: 0}
  controls: {gpu: 0}
slurm-status-command: squeue
slurm-init-seconds-before-status-checks: 5
"""


def write_config(workdir, experiments):
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "config.yaml"  # relative folders: the same config gives the same runs in any workdir
    path.write_text(yaml.safe_dump({"data_dir": "data", "results_dir": "results", "experiments": experiments}))
    return path


def snakemake(workdir, targets, *args, timeout=300, **env):
    """Run `snakemake TARGETS ARGS` on workdir's config.yaml (targets first: options take lists)."""
    cmd = ["snakemake", *targets, "-s", ROOT / "Snakefile", "-d", workdir, "--configfile", workdir / "config.yaml",
           *args]
    env = {**os.environ, "PATH": VENV_PATH, **env}
    try:
        return subprocess.run(list(map(str, cmd)), env=env, capture_output=True, text=True, timeout=timeout,
                              cwd=ROOT)
    except subprocess.TimeoutExpired as exc:
        out = b"".join(o if isinstance(o, bytes) else o.encode() for o in (exc.stdout, exc.stderr) if o)
        queue = subprocess.run("squeue", shell=True, capture_output=True, text=True, env=env).stdout
        pytest.fail(f"snakemake did not finish in {timeout} s\nsqueue:\n{queue}\nlog tail:\n{out.decode()[-6000:]}")


# ------------------------------------------------------------------- sbatch commands, no cluster

# Stands in for every SLURM command the plugin runs: sbatch records its arguments and refuses
# (so nothing runs and Snakemake retries, then gives up); sinfo names a default partition.
FAKE_SLURM = """#!/bin/sh
case "$(basename "$0")" in
  sbatch) printf '%s\\n' "$*" >> "$SBATCH_LOG"; echo "sbatch: error: test stand-in" >&2; exit 1 ;;
  sinfo) echo "debug*" ;;
  *) exit 1 ;;
esac
"""


def sbatch_calls(log):
    """(rule, sbatch options before --wrap) for each recorded call."""
    calls = []
    for line in log.read_text().splitlines():
        options = line.split(" --wrap=")[0]
        calls.append((re.search(r"--comment rule_(\w+?)_wildcards", options).group(1), options))
    return calls


def test_the_profile_shows_site_settings_for_every_rule_that_asks_for_a_gpu():
    """The commented set-resources of profiles/slurm name each training rule (those with a GPU)."""
    gpu_rules = set(re.findall(r'\*\*train_resources\("(\w+)"\)', (ROOT / "workflow/rules/train.smk").read_text()))
    shown = set(re.findall(r"^#   (\w+): \{", (ROOT / PROFILE / "config.yaml").read_text(), re.M))
    assert gpu_rules == {"dense", "rewind", "level", "controls", "transfer", "probe"}
    assert gpu_rules <= shown, sorted(gpu_rules - shown)


@pytest.mark.slow
def test_sbatch_asks_for_a_gpu_for_training_jobs_only(tmp_path):
    workdir = tmp_path / "work"
    # `b`'s dataset is missing, so its fetch is submitted; the dense runs of `a` are trained locally
    # first, so that its level job (of every seed) is ready to submit too; `c`'s dense run is submitted
    digits = {**SMALL, "dataset": {"name": "digits"}, "model": {"name": "lenet_300_100"}}
    write_config(workdir, {"a": SMALL, "b": digits, "c": {**SMALL, "seeds": [0]}})
    dense = [plan_of("a", SMALL, "results/a").outputs(Job("dense", seed))[0] for seed in SMALL["seeds"]]
    local = snakemake(workdir, dense, "--cores", "2")
    assert local.returncode == 0, local.stderr[-3000:]

    bin_dir = tmp_path / "fake-slurm"
    bin_dir.mkdir()
    (bin_dir / "fake-slurm").write_text(FAKE_SLURM)
    (bin_dir / "fake-slurm").chmod(0o755)
    for name in ("sbatch", "sinfo", "squeue", "sacct", "scontrol", "scancel", "sacctmgr", "sshare"):
        (bin_dir / name).symlink_to("fake-slurm")
    # site settings for one rule (GPU model, partition), as a site sets them in the profile;
    # status checks start after 1 s instead of 40 (a refused submission is handled at a check)
    run = snakemake(workdir, [f"results/{x}/summary.csv" for x in "abc"], "--profile", PROFILE,
                    "--set-resources", "level:gpu_model=a100", "level:slurm_partition=gpu",
                    "--slurm-init-seconds-before-status-checks", "1",
                    timeout=120, PATH=f"{bin_dir}:{VENV_PATH}", SBATCH_LOG=str(tmp_path / "sbatch.log"))
    assert run.returncode != 0 and "sbatch: error: test stand-in" in run.stderr, run.stderr[-3000:]
    calls = sbatch_calls(tmp_path / "sbatch.log")
    assert {rule for rule, _ in calls} == {"fetch", "dense", "level"}, calls
    for rule, options in calls:
        gpu_flags = re.findall(r"--gpus=\S+|--gres=\S+", options)
        assert gpu_flags == {"fetch": [], "dense": ["--gpus=1"], "level": ["--gpus=a100:1"]}[rule], options
        assert ("-p gpu" if rule == "level" else "-p debug") in options  # site settings per rule
        assert "--mem 4000" in options and "--cpus-per-task=1" in options
    # the profile retries a failed job once; its second attempt asks for twice the runtime
    assert [re.search(r" -t (\d+)", o).group(1) for r, o in calls if r == "dense"] == ["120", "240"]
    assert [re.search(r" -t (\d+)", o).group(1) for r, o in calls if r == "fetch"] == ["60", "120"]


# ------------------------------------------------------------------ a real one-machine cluster

CONF = Path("/etc/slurm/slurm.conf")  # the plugin drops SLURM_CONF inside jobs: only the default path works
MARK = "# One-machine test cluster, written by lth's SLURM test (tests/e2e/test_slurm.py).\n"
SBIN_PATH = f"{os.environ['PATH']}:/usr/sbin:/sbin"  # the daemons live in sbin, off a user's PATH


def cluster_states():
    """Node states from sinfo, or None when no controller answers."""
    try:
        run = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired:
        return None
    return run.stdout.split() if run.returncode == 0 else None


def slurm_conf(state_dir):
    # the node as slurmd sees this machine (CPUs, sockets, RealMemory): a node that matches its config
    node = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True,
                          env={**os.environ, "PATH": SBIN_PATH}).stdout.splitlines()[0]
    host = socket.gethostname().split(".")[0]
    return MARK + f"""ClusterName=lth-test
SlurmctldHost={host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/pgid
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MailProg=/bin/true
StateSaveLocation={state_dir}/slurmctld
SlurmdSpoolDir={state_dir}/slurmd
SlurmctldPidFile={state_dir}/slurmctld.pid
SlurmdPidFile={state_dir}/slurmd.pid
SlurmctldLogFile={state_dir}/slurmctld.log
SlurmdLogFile={state_dir}/slurmd.log
{node} NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    """A running SLURM cluster: one already up is used as is; else one is started here and stopped after."""
    missing = [c for c in ("munged", "slurmctld", "slurmd", "sbatch", "sinfo") if not shutil.which(c, path=SBIN_PATH)]
    if missing:
        missing_tool(f"SLURM is not installed (no {', '.join(missing)}): "
                     "apt-get install slurmctld slurmd slurm-client munge (.ci/run does)")
    if cluster_states():
        yield
        return
    if os.geteuid() != 0:
        missing_tool("no SLURM cluster is running, and starting munged/slurmctld/slurmd needs root")
    if CONF.exists() and MARK not in CONF.read_text():
        missing_tool(f"{CONF} belongs to a real cluster that is not running; not overwriting it")
    state = tmp_path_factory.mktemp("slurm")
    for d in ("slurmctld", "slurmd"):
        (state / d).mkdir()
    CONF.parent.mkdir(parents=True, exist_ok=True)
    CONF.write_text(slurm_conf(state))
    daemons, outputs = [], []

    def start(*cmd):
        outputs.append(open(state / f"{cmd[0]}.out", "w"))
        daemons.append(subprocess.Popen(cmd, stdout=outputs[-1], stderr=subprocess.STDOUT, start_new_session=True,
                                        env={**os.environ, "PATH": SBIN_PATH}))

    try:
        if subprocess.run(["munge", "-n"], capture_output=True).returncode != 0:  # no munged running yet
            if not Path("/etc/munge/munge.key").exists():
                subprocess.run(["mungekey", "-c"], check=True, env={**os.environ, "PATH": SBIN_PATH})
            Path("/run/munge").mkdir(parents=True, exist_ok=True)
            start("munged", "--foreground", "--force")  # --force: the Debian key is munge-owned, we are root
            time.sleep(0.5)
        start("slurmctld", "-D", "-c")  # -c: no job state from an earlier run
        start("slurmd", "-D")
        deadline = time.time() + 60
        while "idle" not in (cluster_states() or []):
            if time.time() > deadline or any(p.poll() is not None for p in daemons):
                logs = "\n".join(f"--- {f.name}\n{f.read_text()[-2000:]}" for f in sorted(state.glob("*.out")))
                pytest.fail(f"the test SLURM cluster did not come up (sinfo: {cluster_states()})\n{logs}")
            time.sleep(0.5)
        yield
    finally:  # a job still running then is a test's tiny job: it ends by itself; -c forgets it
        for proc in reversed(daemons):
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        for out in outputs:
            out.close()
        # Left behind, a config naming a controller that is gone costs every later `snakemake`
        # start ~10 s: the SLURM plugin runs `scontrol show config` when it is imported.
        CONF.unlink(missing_ok=True)


def read_rows(path):
    return list(csv.DictReader(path.open()))


@pytest.mark.slow
def test_tiny_workflow_on_a_slurm_cluster_equals_a_local_run(slurm_cluster, tmp_path):
    cluster, local = tmp_path / "cluster", tmp_path / "local"
    for workdir in (cluster, local):
        write_config(workdir, {"tiny": SMALL})
    target = "results/tiny/summary.csv"  # training and summary: what the comparison needs
    with ThreadPoolExecutor() as pool:  # the local reference runs meanwhile: cluster jobs mostly wait
        local_run = pool.submit(snakemake, local, [target], "--cores", "1")
        run = snakemake(cluster, [target], "--profile", PROFILE, *CPU_ONLY_TEST_CLUSTER, timeout=480)
        log = run.stdout + run.stderr
        assert run.returncode == 0, log[-6000:]
        submitted = re.findall(r"submitted with SLURM jobid \d+ \(log: \S*/rule_(\w+)/", log)
        # one seed a job: the profile's jobs make the chain, not the start-ups, the cost (Plan.seeds_per_job)
        assert sorted(submitted) == ["controls"] * 2 + ["dense"] * 2 + ["fetch"] + ["level"] * 2, log[-6000:]
        assert local_run.result().returncode == 0, local_run.result().stderr[-3000:]
    on_cluster, here = read_rows(cluster / target), read_rows(local / target)
    assert len(on_cluster) == len(here) == 2 * (1 + 3)
    timing = {k for k in here[0] if k.endswith("_seconds")}  # wall/train time differ; all else must not
    assert [{k: v for k, v in row.items() if k not in timing} for row in on_cluster] == \
           [{k: v for k, v in row.items() if k not in timing} for row in here]
    densities = "results/tiny/layer_density.csv"
    assert (cluster / densities).read_text() == (local / densities).read_text()


@pytest.mark.slow
def test_the_guides_command_runs_the_default_config_on_a_slurm_cluster(slurm_cluster, tmp_path):
    """docs/guides/slurm.md's first command as written (less `uv run`), in a copy of the project whose default
    config is a tiny experiment (one seed, one level, the ticket only: fetch, dense and level are submitted) and
    whose profile carries the test cluster's site settings where the guide puts them. It makes all of the default
    target, the report included."""
    command = typed(blocks(ROOT / "docs" / "guides" / "slurm.md")[0][0])
    project = snapshot_project(tmp_path / "project")
    (project / "config" / "config.yaml").write_text(yaml.safe_dump(
        {"tracking": {"enabled": False}, "experiments": {"tiny": {**SMALL, "seeds": [0], "variants": ["ticket"]}}}))
    with open(project / "profiles" / "slurm" / "config.yaml", "a") as profile:
        profile.write(TEST_CLUSTER_SITE_SETTINGS)
    try:
        run = subprocess.run(shlex.split(command), cwd=project, env={**os.environ, "PATH": VENV_PATH},
                             capture_output=True, text=True, timeout=480)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{command} did not finish in 480 s\n{(exc.stderr or b'')[-6000:]}")
    log = run.stdout + run.stderr
    assert run.returncode == 0, (command, log[-6000:])
    submitted = re.findall(r"submitted with SLURM jobid \d+ \(log: \S*/rule_(\w+)/", log)
    assert sorted(submitted) == ["dense", "fetch", "level"], (command, log[-6000:])
    assert len(read_rows(project / "results" / "tiny" / "summary.csv")) == 2  # dense and level 1's ticket
    assert (project / "reports" / "tiny.html").stat().st_size > 0


@pytest.mark.slow
def test_a_training_job_preempted_on_the_cluster_is_retried_and_ends_as_an_uninterrupted_run(slurm_cluster, tmp_path):
    """`scancel --signal=TERM` on a running dense job (SLURM's preemption signal): the job saves its resume
    checkpoint at its step and fails, the profile's retry resubmits it, and it resumes there: every trained
    tensor and the summary equal a local run's of the same config."""
    from lth.store import artifacts

    exp = {**SMALL, "seeds": [0], "variants": ["ticket"],
           "training": {**SMALL["training"], "iterations": 20000, "eval_every": 500, "checkpoint_every": 100000}}
    # 20,000 steps: several seconds of training even on an idle machine (3,000 ended in 1 s, before the signal)
    cluster, local = tmp_path / "cluster", tmp_path / "local"
    for workdir in (cluster, local):
        write_config(workdir, {"tiny": exp})
    layout = plan_of("tiny", exp, cluster / "results" / "tiny").layout
    target = "results/tiny/summary.csv"
    signalled = None
    with ThreadPoolExecutor() as pool:
        local_run = pool.submit(snakemake, local, [target], "--cores", "1", timeout=900)
        run = pool.submit(snakemake, cluster, [target], "--profile", PROFILE, *CPU_ONLY_TEST_CLUSTER, timeout=900)
        deadline = time.time() + 600
        while signalled is None and not run.done() and time.time() < deadline:
            queue = subprocess.run(["squeue", "-h", "-o", "%i %T %k"], capture_output=True, text=True).stdout
            dense = [line.split()[0] for line in queue.splitlines() if "RUNNING" in line and "rule_dense" in line]
            if dense and layout.init(0).exists():  # training has started
                time.sleep(1.0)
                subprocess.run(["scancel", "--signal=TERM", dense[0]], check=True)
                signalled = dense[0]
            time.sleep(0.2)
        log = run.result().stdout + run.result().stderr
        assert signalled, f"no running dense job was seen to signal\n{log[-4000:]}"
        assert run.result().returncode == 0, log[-6000:]
        assert local_run.result().returncode == 0, local_run.result().stderr[-3000:]
    dense_logs = "".join(p.read_text() for p in (cluster / "results" / "tiny" / "logs").glob("*dense*"))
    assert "resuming at iteration" in dense_logs and "(stopped by SIGTERM)" in dense_logs, dense_logs[-2000:]
    assert len(re.findall(r"submitted with SLURM jobid \d+ \(log: \S*/rule_dense/", log)) == 2  # the retry
    trained = sorted(p.relative_to(cluster) for p in (cluster / "results").rglob("*.safetensors"))
    assert trained and trained == sorted(p.relative_to(local) for p in (local / "results").rglob("*.safetensors"))
    for path in trained:
        assert artifacts.read_checked(cluster / path).keys() == artifacts.read_checked(local / path).keys()
        assert (cluster / path).read_bytes() == (local / path).read_bytes(), path
    timing = {k for k in read_rows(local / target)[0] if k.endswith("_seconds")}
    assert [{k: v for k, v in r.items() if k not in timing} for r in read_rows(cluster / target)] == \
           [{k: v for k, v in r.items() if k not in timing} for r in read_rows(local / target)]


@pytest.mark.slow
def test_cluster_jobs_run_the_environments_lth_with_the_environment_off_path(slurm_cluster, tmp_path):
    """`.venv/bin/snakemake --profile profiles/slurm` from a login shell without the environment on PATH: the
    jobs inherit that PATH (sbatch --export=ALL) and run the environment's lth. One job: the dataset's fetch."""
    data = dataset_dir(tmp_path / "data", "mnist1d") / TENSORS_FILE
    run = start_workflow(tmp_path, [ENV_BIN / "snakemake"], "--profile", PROFILE, *CPU_ONLY_TEST_CLUSTER,
                         targets=[data], ahead=[Path(shutil.which("sbatch")).parent], expect=[data], timeout=300)
    log = run.stdout + run.stderr
    assert re.findall(r"submitted with SLURM jobid \d+ \(log: \S*/rule_(\w+)/", log) == ["fetch"], log[-6000:]
