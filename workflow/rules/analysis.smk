# Analyses (lth.analyses): each registered analysis an experiment lists under `analyses` is one
# job over the experiment's finished runs, writing a table beside summary.csv.


rule analysis:
    input:
        settings=lambda wc: settings_json(wc.exp),
        runs=lambda wc: [str(p) for p in PLANS[wc.exp].targets()],
        own=lambda wc: [
            str(PLANS[wc.exp].done(j)) for j in PLANS[wc.exp].probes(wc.analysis)
        ],
    output:
        PATTERNS["analysis"],
    log:
        PATTERNS["analysis_log"],
    wildcard_constraints:
        analysis="|".join(ANALYSES) or "^$",
    params:
        root=experiment_root,
    shell:
        "lth analyse {wildcards.analysis} --results {params.root:q} > {log:q} 2>&1"
