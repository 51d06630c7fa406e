# MLflow tracking (lth.tracking): one MLflow experiment per config experiment, one run per
# training run. The `track` step logs every finished run the store does not hold yet, in one
# process (importing mlflow costs 5-15 s here, more than most training jobs); with
# `tracking.live: true` each training job also logs its runs as it finishes.


rule tracking_store:
    """Create the store and the experiment once, before parallel jobs (a fresh SQLite store
    opened by many processes at once races on its schema migration)."""
    output:
        f"{RESULTS}/{{exp}}/mlflow-experiment.txt",
    localrule: True
    shell:
        "lth track --prepare --experiment {wildcards.exp} --results {RESULTS}/{wildcards.exp} "
        "--tracking-uri {TRACKING_URI:q} > {output}"


rule track:
    input:
        level_records,
    output:
        f"{RESULTS}/{{exp}}/mlflow-logged.txt",
    params:
        settings=settings_json,
    resources:
        mem_mb=2000,
        runtime=30,
    localrule: True
    shell:
        "lth track --experiment {wildcards.exp} --results {RESULTS}/{wildcards.exp} --settings-json {params.settings:q} "
        "--tracking-uri {TRACKING_URI:q} > {output}"
