# MLflow tracking (lth.store.tracking): one MLflow experiment per config experiment, one run per
# training run. The `track` step logs every finished run the store does not hold yet, in one
# process (importing mlflow costs 5-15 s here, more than most training jobs); with
# `tracking.live: true` each training job also logs its runs as it finishes. The tracking URI
# reaches the commands through settings.json, never the command line.


rule tracking_store:
    """Create the store and the experiment once, before parallel jobs (a fresh SQLite store
    opened by many processes at once races on its schema migration)."""
    input:
        lambda wc: settings_json(wc.exp),
    output:
        f"{RESULTS}/{{exp}}/mlflow-experiment.txt",
    log:
        PATTERNS["tracking_store_log"],
    localrule: True
    params:
        root=experiment_root,
    shell:
        "lth track --prepare --results {params.root:q} > {output:q} 2> {log:q}"


rule track:
    input:
        settings=lambda wc: settings_json(wc.exp),
        runs=lambda wc: [str(p) for p in PLANS[wc.exp].targets()],
    output:
        f"{RESULTS}/{{exp}}/mlflow-logged.txt",
    log:
        PATTERNS["track_log"],
    localrule: True
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        root=experiment_root,
    shell:
        "lth track --results {params.root:q} > {output:q} 2> {log:q}"
