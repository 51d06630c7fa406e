"""The `lth` command: stages chained by hand, and one clear line for every kind of bad input."""

import json
import signal
import shutil
import subprocess
import sys

import pytest

from lth import cli
from lth.plan import Plan
from lth.plan.layout import RunKey


def layout_of(results):
    return Plan.from_results(results).layout


def run(capsys, *args):
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def stage(results, settings, data_dir, command, *extra):
    return [command, "--settings", settings, "--results", results, "--data-dir", data_dir, "--seed", 0, *extra]


@pytest.fixture
def two_threads():
    """torch at 2 threads (what it picks on a 2-core machine), put back after the test."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


def test_stages_chain_by_hand(capsys, tmp_path, data_dir, settings_file, two_threads):
    s, results = settings_file(), tmp_path / "r"
    term = signal.getsignal(signal.SIGTERM)
    assert run(capsys, *stage(results, s, data_dir, "train"))[0] == 0
    assert signal.getsignal(signal.SIGTERM) is term  # the preemption handler is the command's, not the caller's
    code, out, _ = run(capsys, *stage(results, s, data_dir, "prune", "--level", 1))
    assert code == 0 and "weights remaining 0.5" in out
    code, out, _ = run(capsys, *stage(results, s, data_dir, "retrain", "--level", 1, "--variant", "ticket",
                                      "--variant", "reinit"))
    assert code == 0 and out.count("test accuracy") == 2
    layout = layout_of(results)
    for variant in ("ticket", "reinit"):
        key = RunKey(0, 1, variant)
        assert layout.metrics(key).exists() and not layout.checkpoint(key).exists()
    # by hand, the thread count is the workflow's default (1), whatever torch would pick, and recorded
    record = json.loads(layout.metrics(RunKey(0, 0, "dense")).read_text())
    assert record["provenance"]["threads"] == 1
    # a control has no mask of its own to prune; a job's --seed must be one the plan has
    code, _, err = run(capsys, *stage(results, s, data_dir, "prune", "--level", 1, "--chain", "reinit"))
    assert code != 0 and "reinit is not a mask chain of level 1" in err
    assert layout.metrics(RunKey(0, 1, "reinit")).exists()
    code, _, err = run(capsys, "job", "level", "--results", results, "--seed", 5, "--level", 1, "--chain", "ticket")
    assert code != 0 and "seed 5 is not one of the plan's seeds [0]" in err


@pytest.mark.parametrize("changes, message", [
    ({"dataset": {"name": "imagenet"}}, "dataset.name: unknown dataset 'imagenet'"),
    ({"model": {"name": "resnet9000"}}, "model.name: unknown model 'resnet9000'"),
    ({"pruning": {"strategy": "magic"}}, "pruning.strategy: 'magic' is not one of"),
    ({"pruning": {"rates": {"fc": 1.5}}}, "pruning.rates.fc: 1.5"),
    ({"pruning": {"rates": {"fc": 0}}}, "pruning.rates.fc: 0"),
    ({"pruning": {"global_rate": -0.1}}, "pruning.global_rate: -0.1"),
    ({"rewind_iteration": 500}, "rewind_iteration: 500 is beyond the training budget"),
    ({"variants": ["ticket", "lucky"]}, "variants.1: 'lucky' is not one of"),
    ({"training": {"learning_rate": 0.1}}, "'learning_rate' was unexpected"),
])
def test_bad_settings_give_one_line_naming_key_and_value(capsys, tmp_path, data_dir, settings_file, changes, message):
    results = tmp_path / "r"
    code, out, err = run(capsys, *stage(results, settings_file(changes), data_dir, "train"))
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("lth: error: ") and message in err, err
    assert not results.exists()


def test_unknown_dataset_for_fetch(capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        run(capsys, "fetch", "imagenet", "--data-dir", tmp_path)
    err = capsys.readouterr().err
    assert e.value.code == 2 and "invalid choice: 'imagenet'" in err and "mnist1d" in err


def test_an_unknown_option_prints_the_subcommands_usage_and_the_version_is_known(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["summarize", "--results", "r", "--bogus"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.splitlines()[-1] == "lth summarize: error: unrecognized arguments: --bogus"
    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert capsys.readouterr().out.startswith("lth 0.")


def test_missing_settings_file(capsys, tmp_path, data_dir):
    code, _, err = run(capsys, *stage(tmp_path / "r", tmp_path / "nope.yaml", data_dir, "train"))
    assert code == 2 and "nope.yaml" in err


@pytest.fixture
def trained(capsys, tmp_path, data_dir, settings_file):
    """A results folder with a dense run and the level-1 ticket mask."""
    s, results = settings_file(), tmp_path / "r"
    assert run(capsys, *stage(results, s, data_dir, "train"))[0] == 0
    assert run(capsys, *stage(results, s, data_dir, "prune", "--level", 1))[0] == 0
    return s, results


def test_weights_of_another_architecture_are_refused(capsys, tmp_path, data_dir, settings_file, trained):
    s, results = trained
    wide = settings_file({"model": {"options": {"hidden": 48}}}, name="wide.json")
    assert run(capsys, *stage(tmp_path / "wide", wide, data_dir, "train"))[0] == 0
    layout, wide_layout, ticket, dense = layout_of(results), layout_of(tmp_path / "wide"), RunKey(0, 1, "ticket"), \
        RunKey(0, 0, "dense")
    shutil.copy(wide_layout.rewind(0, 0), layout.rewind(0, 0))
    code, _, err = run(capsys, *stage(results, s, data_dir, "retrain", "--level", 1, "--variant", "ticket"))
    assert code == 2 and "init.safetensors: weights do not fit model" in err and "(48" in err, err
    assert not layout.final(ticket).exists() and not layout.metrics(ticket).exists()
    shutil.copy(wide_layout.mask(dense), layout.mask(dense))
    code, _, err = run(capsys, *stage(results, s, data_dir, "prune", "--level", 1))
    assert code == 2 and "mask.safetensors" in err and "(48, 40)" in err, err


def test_truncated_weights_file_is_refused(capsys, data_dir, trained):
    s, results = trained
    layout = layout_of(results)
    data = layout.rewind(0, 0).read_bytes()
    layout.rewind(0, 0).write_bytes(data[: len(data) // 2])
    code, _, err = run(capsys, *stage(results, s, data_dir, "retrain", "--level", 1, "--variant", "ticket"))
    assert code == 2 and "init.safetensors: unreadable or corrupted" in err, err
    assert not layout.metrics(RunKey(0, 1, "ticket")).exists()


def test_corrupted_resume_checkpoint_is_refused(capsys, data_dir, trained):
    s, results = trained
    layout, ticket = layout_of(results), RunKey(0, 1, "ticket")
    layout.checkpoint(ticket).write_bytes(b"PK\x03\x04 not really a checkpoint")
    code, _, err = run(capsys, *stage(results, s, data_dir, "retrain", "--level", 1, "--variant", "ticket"))
    assert code == 2 and "resume.pt: unreadable resume checkpoint" in err, err
    assert not layout.metrics(ticket).exists()


def test_missing_dataset_names_the_file_and_the_fetch_command(capsys, tmp_path, settings_file):
    code, _, err = run(capsys, *stage(tmp_path / "r", settings_file(), tmp_path / "empty", "train"))
    assert code == 2 and "lth fetch mnist1d" in err, err


def test_console_command_exits_nonzero_with_one_line(tmp_path, settings_file):
    bad = settings_file({"pruning": {"rates": {"fc": 2}}})
    proc = subprocess.run([sys.executable, "-m", "lth", "train", "--settings", str(bad), "--results",
                           str(tmp_path / "r"), "--seed", "0"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "pruning.rates.fc: 2" in proc.stderr


def test_every_subcommand_has_help():
    for command in ("fetch", "verify", "train", "prune", "retrain", "export", "job", "track", "summarize"):
        proc = subprocess.run([sys.executable, "-m", "lth", command, "--help"], capture_output=True, text=True)
        assert proc.returncode == 0 and "usage: lth " + command in proc.stdout
