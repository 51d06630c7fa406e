"""The reproduction scorecard (lth.report.scorecard, `lth scorecard`): claims of experiments that ran with
their verdicts, and for those that did not, why; README's copy of the table rewritten between its markers."""

import subprocess
import sys

import pandas as pd
import pytest
import yaml

from lth.core.errors import LTHError
from lth.report import scorecard

from conftest import tiny

CLAIM = {"claim": "ticket beats dense at half the weights", "source": "Fig. 1", "published": "+2 points",
         "variant": "ticket", "versus": "dense", "at": 0.5}


def _write_results(root, gain: float):
    rows = [{"experiment": root.name, "seed": s, "level": lv, "variant": v, "weights_remaining": w,
             "test_accuracy": 0.6 + (gain if v == "ticket" else 0) + 0.001 * s * (v == "ticket"),
             "early_stop_iteration": 100, "wall_seconds": 30.0}
            for s in range(4) for lv, v, w in ((0, "dense", 1.0), (1, "ticket", 0.5))]
    root.mkdir(parents=True)
    pd.DataFrame(rows).to_csv(root / "summary.csv", index=False)
    pd.DataFrame([{"experiment": root.name, "seed": 0, "level": 0, "variant": "dense", "target": "",
                   "layer": "linear1.weight", "density": 1.0}]).to_csv(root / "layer_density.csv", index=False)


@pytest.fixture
def configs(tmp_path):
    ran = {"ran": tiny({"reference": {"citation": "A 2020", "claims": [CLAIM],
                                      "protocol": [{"choice": "seeds", "paper": "5", "source": "Sec. 2", "ours": "4",
                                                    "deviation": "budget"}]}}),
           "quiet": tiny()}
    elsewhere = {"big": tiny({"reference": {"needs": ["gpu"], "claims": [CLAIM]}}),
                 "later": tiny({"reference": {"claims": [CLAIM]}}),
                 "fetched": tiny({"dataset": {"name": "mnist", "val_size": 5000},
                                  "model": {"name": "lenet_300_100", "options": {}}, "reference": {"claims": [CLAIM]}})}
    paths = [tmp_path / "config.yaml", tmp_path / "preset.yaml"]
    paths[0].write_text(yaml.safe_dump({"experiments": ran}))
    paths[1].write_text(yaml.safe_dump({"download": True, "experiments": elsewhere}))
    _write_results(tmp_path / "results" / "ran", gain=0.02)
    _write_results(tmp_path / "results" / "quiet", gain=0.0)
    return paths


def test_claims_that_ran_have_verdicts_and_the_others_say_why(tmp_path, configs):
    table = scorecard.write(configs, tmp_path / "results", tmp_path / "reports")
    by = table.set_index("experiment")
    assert by.loc["ran", "verdict"] == "held" and by.loc["ran", "ours"] == "+2.2 points"
    assert by.loc["ran", "training minutes"] == 4.0 and by.loc["ran", "deviations"] == "seeds: budget"
    assert by.loc["quiet", "claim"] == "(no claims stated)" and by.loc["quiet", "deviations"] == "no protocol stated"
    assert by.loc["big", "verdict"] == "needs a GPU"
    assert by.loc["fetched", "verdict"] == "needs a download"
    assert by.loc["later", "verdict"].startswith("not run: snakemake --cores all --configfile ")
    assert pd.read_csv(tmp_path / "reports" / "scorecard.csv").shape == table.shape
    html = (tmp_path / "reports" / "scorecard.html").read_text()
    assert "ticket beats dense at half the weights" in html and "needs a GPU" in html


def test_the_readme_table_is_rewritten_between_its_markers(tmp_path, configs):
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{scorecard.BEGIN}\nold\n{scorecard.END}\n\nafter\n")
    cli = [sys.executable, "-m", "lth", "scorecard", *map(str, configs), "--results", str(tmp_path / "results"),
           "--out", str(tmp_path / "reports"), "--readme", str(readme)]
    run = subprocess.run(cli, capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "5 claims" in run.stdout and "1 held" in run.stdout
    text = readme.read_text()
    assert "old" not in text and text.endswith("\n\nafter\n")
    assert "| ran | ticket beats dense at half the weights | +2 points | +2.2 points |" in text
    assert "| big | 1 claim |  |  |  |  | needs a GPU |  |" in text  # not run: one row, and why
    seeds = [line.split(" | ")[5] for line in text.splitlines() if line.startswith("| ran |")]
    assert seeds and all(s.isdigit() for s in seeds)  # a count, not 3.0
    readme.write_text("no block\n")
    with pytest.raises(LTHError, match="no scorecard block"):
        scorecard.write(configs, tmp_path / "results", tmp_path / "reports", readme)
