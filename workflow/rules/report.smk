# Stage 7: the regenerated paper report of each experiment. notebooks/lth_report.ipynb runs under
# papermill in this environment's kernel on the experiment's results folder (its settings.json
# holds the published numbers); the executed notebook is kept beside its HTML export, and the
# figures are written as PNG (<name>.png) and SVG (<exp>-<name>.svg). `snakemake --report report.html`
# collects the PNGs.


report: "../report/workflow.rst"


rule report:
    """Execute the report notebook on an experiment's results and export it as HTML."""
    input:
        notebook=REPORT_NOTEBOOK,
        settings=lambda wc: settings_json(wc.exp),
        summary=PATTERNS["summary"],
        densities=PATTERNS["layer_density"],
        analyses=lambda wc: [
            analysis_csv(wc.exp, a) for a in PLANS[wc.exp].settings.analyses
        ],
    output:
        html=report(
            f"{REPORTS}/{{exp}}.html",
            caption="../report/notebook.rst",
            category="Reports",
            labels={"experiment": "{exp}", "item": "notebook (HTML)"},
        ),
        notebook=f"{REPORTS}/{{exp}}.ipynb",
        figures=report(
            directory(f"{REPORTS}/{{exp}}"),
            patterns=["{name}.png"],
            caption="../report/figures.rst",
            category="Figures",
            labels={"experiment": "{exp}", "figure": "{name}"},
        ),
    log:
        PATTERNS["report_log"],
    localrule: True
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        results=experiment_root,
    shell:
        "python -m lth.report --notebook {input.notebook:q} --results {params.results:q} "
        "--experiment {wildcards.exp} --figures-dir {output.figures:q} "
        "--executed {output.notebook:q} --html {output.html:q} > {log:q} 2>&1"


rule compare:
    """A figure across experiments (the config's `comparisons`), run in-process: no shell."""
    input:
        lambda wc: [
            summary_csv(e) for e in config["comparisons"][wc.comparison]["experiments"]
        ],
    output:
        png=f"{REPORTS}/compare-{{comparison}}.png",
        csv=f"{REPORTS}/compare-{{comparison}}.csv",
    log:
        f"{REPORTS}/logs/compare-{{comparison}}.log",
    wildcard_constraints:
        comparison="|".join(config["comparisons"]) or "^$",
    localrule: True
    run:
        from lth.report.compare import main

        c = config["comparisons"][wildcards.comparison]
        argv = [f"--summary={s}" for s in input]
        main(
            [
                *argv,
                f"--variant={c['variant']}",
                f"--title={c['title']}",
                f"--out={output.png[:-4]}",
            ]
        )


rule scorecard:
    """`snakemake scorecard`: this config's experiments run, then every claim of config/config.yaml
    and the presets collected (lth.report.scorecard) from what is in the results folder; an experiment
    not run says why. In-process: no shell."""
    input:
        [summary_csv(name) for name in EXPERIMENTS],
        [
            analysis_csv(name, a)
            for name in EXPERIMENTS
            for a in PLANS[name].settings.analyses
        ],
    output:
        csv=f"{REPORTS}/scorecard.csv",
        html=f"{REPORTS}/scorecard.html",
    log:
        f"{REPORTS}/logs/scorecard.log",
    localrule: True
    run:
        from lth.report.scorecard import configs_of, write

        write(
            configs_of(PROJECT),
            Path(RESULTS),
            Path(output.csv).parent,
            log=Path(log[0]),
        )
