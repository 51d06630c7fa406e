# Versioning with DVC: Snakemake owns the DAG, DVC owns the versions (no dvc.yaml stages).
# `snakemake --cores all version` records every finished experiment as results/<exp>.dvc, the
# hashes of all its files (see .dvcignore for what is left out); commit those files with git and
# `dvc push` uploads the files. docs/guides/dvc.md has the whole round trip.


rule dvc_add:
    """Version an experiment's finished results (after its summary) as results/<exp>.dvc."""
    input:
        summary=PATTERNS["summary"],
        densities=PATTERNS["layer_density"],
    output:
        f"{RESULTS}/{{exp}}.dvc",
    log:
        f"{RESULTS}/logs/dvc-{{exp}}.log",  # beside, not in, the folder it versions
    localrule: True
    params:
        folder=lambda wc: f"{RESULTS}/{wc.exp}",
        commit_data=commit_pinned_data,
    # --no-relink: DVC leaves the files as they are (relinking re-stamps them, and Snakemake would
    # retrain); --wait-for-lock: experiments finishing together would fail on DVC's repository lock
    shell:
        "(export DVC_NO_ANALYTICS=1; {params.commit_data}dvc --wait-for-lock add --quiet --no-relink {params.folder:q}) "
        "> {log:q} 2>&1"


rule version:
    """Target: version every experiment of the config (`snakemake --cores all version`)."""
    input:
        [f"{RESULTS}/{name}.dvc" for name in EXPERIMENTS],
    localrule: True


rule runs:
    """Target: every training run of every experiment, nothing derived from them. After `dvc pull`
    the pulled files have fresh modification times in no particular order, so Snakemake would
    retrain; `snakemake --touch --forceall runs` marks them up to date in DAG order (it changes
    modification times only), and the next run regenerates summaries and reports from them.
    """
    input:
        [
            str(path)
            for plan in PLANS.values()
            for job in plan.jobs()
            for path in plan.outputs(job)
        ],
    localrule: True
