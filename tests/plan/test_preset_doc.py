"""The Presets page of the site (lth.plan.preset_doc): every preset, its paper, protocol and claims."""

from pathlib import Path

import yaml

from lth.plan import preset_doc

ROOT = Path(__file__).resolve().parents[2]
PRESETS = ROOT / "config" / "presets"


def flat(text):
    """As the page shows free text (brackets escaped, one line)."""
    return preset_doc.cell(text)


def test_every_preset_appears_with_its_citation_protocol_and_claims():
    page = " ".join(preset_doc.markdown(PRESETS).split())
    for path in sorted(PRESETS.glob("*.yaml")):
        assert f"## {path.stem}" in page, path.name
        assert f"--configfile config/presets/{path.stem}.yaml" in page, path.name
        for name, experiment in yaml.safe_load(path.read_text())["experiments"].items():
            assert f"`{name}`" in page, (path.name, name)
            reference = experiment.get("reference") or {}
            if reference.get("citation"):
                assert flat(reference["citation"]) in page, (path.name, name)
            for entry in reference.get("protocol") or []:
                assert f"| {flat(entry['choice'])} |" in page, (path.name, entry["choice"])
                if entry.get("deviation"):
                    assert flat(entry["deviation"]) in page, (path.name, entry["deviation"])
            for claim in reference.get("claims") or []:
                assert flat(claim["claim"]) in page, (path.name, claim["claim"])


def test_a_preset_with_a_deviation_renders_it_and_marks_the_others(tmp_path):
    (tmp_path / "tiny.yaml").write_text("""\
# A tiny preset: two protocol entries, one of them a deviation.
download: true
experiments:
  small:
    dataset: {name: mnist1d}
    model: {name: mlp1d}
    kind: oneshot
    oneshot:
      densities: [0.5, 0.1]
      methods: {imp: {score: magnitude, at: previous}, random: {score: random, at: init}}
    seeds: [0, 1]
    reference:
      citation: "Someone 2024, A paper"
      needs: [gpu]
      protocol:
        - {choice: seeds, paper: "five", source: "Table 1", ours: "2 seeds", deviation: "CPU budget"}
        - {choice: optimiser, paper: "Adam", source: "Section 3", ours: "Adam"}
      claims:
        - {claim: "the ticket beats random pruning at 10 %", source: "Figure 2", published: "+3 points"}
""")
    page = preset_doc.markdown(tmp_path)
    assert "| seeds | five | Table 1 | 2 seeds | CPU budget |" in page
    assert "| optimiser | Adam | Section 3 | Adam | as the paper |" in page
    assert "| the ticket beats random pruning at 10 % | Figure 2 | +3 points |" in page
    assert "| [`tiny`](#tiny) | Someone 2024 | download, gpu | oneshot: `mlp1d` on `mnist1d` |" in page
    assert "densities 50 %, 10 %" in page and "imp, random" in page and "| 0, 1 |" in page
    assert "A tiny preset: two protocol entries" in page
    assert preset_doc.plain("x[-1] at <iteration>, `a[0]`") == "x\\[-1\\] at &lt;iteration>, `a[0]`"
    assert "uv run snakemake --cores all --configfile config/presets/tiny.yaml" in page

