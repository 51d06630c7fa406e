# Stage 6: one tidy table per experiment, over the runs its plan holds.


rule summary:
    input:
        settings=lambda wc: settings_json(wc.exp),
        runs=lambda wc: [str(p) for p in PLANS[wc.exp].targets()],
    output:
        summary=report(
            PATTERNS["summary"],
            caption="../report/summary.rst",
            category="Data",
            labels={"experiment": "{exp}", "table": "summary.csv"},
        ),
        densities=PATTERNS["layer_density"],
    log:
        PATTERNS["summary_log"],
    localrule: True
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        root=experiment_root,
    shell:
        "lth summarize --results {params.root:q} > {log:q} 2>&1"
