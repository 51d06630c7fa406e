# Stage 1: materialise a dataset (generate it offline, or through torchvision) and verify it against
# the md5 that data.dvc pins (lth.data.pins): training never starts on other bytes than the pinned ones.
# A pinned file in the project's data folder also goes into the DVC cache (`dvc status` is clean).
# Nothing is hashed at parse time: each training job checks the pinned files it reads.


rule fetch:
    output:
        # `update`: Snakemake does not delete the file before the job, nor after a failed one: another
        # workflow sharing the data folder may have written it meanwhile, or be reading it
        update(f"{DATA}/{{dataset}}/{TENSORS_FILE}"),
    log:
        f"{RESULTS}/logs/fetch-{{dataset}}.log",  # the workflow's own: workflows may share the data folder
    wildcard_constraints:
        dataset="|".join(DATASETS_USED) or "^$",
    resources:
        mem_mb=4000,
        runtime=lambda wc, attempt: 60 * attempt,
    params:
        name=lambda wc: DATASETS_USED[wc.dataset].name,
        options=fetch_options,
        download="--download" if config["download"] else "",
        pins=DATA_PINS.file,
        data=lambda wc, output: str(Path(output[0]).parent.parent),
        commit=lambda wc, output: commit_pinned([output[0]], verified=True),
    # `lth verify` logs whether the file is pinned; a mismatch goes to the terminal and fails the job
    shell:
        "lth fetch {params.name:q} --data-dir {params.data:q} {params.download} {params.options} > {log:q} 2>&1 && "
        "lth verify --pins {params.pins:q} --data-dir {params.data:q} {output:q} >> {log:q} && "
        "(({params.commit}true) >> {log:q} 2>&1 || echo 'lth: WARNING: {output} verified, but not put into the "
        "DVC cache (not a DVC repository?); see {log}' >&2)"
