# Stage 1: materialise a dataset (generate it offline, or through torchvision) and verify it against
# the md5 that data.dvc pins (lth.pins): training never starts on other bytes than the pinned ones.

from lth import pins


def data_error(message):
    sys.exit(f"lth data error: {message}")


try:
    DATA_PINS = pins.load(f"{workflow.basedir}/data.dvc")
except LTHError as exc:
    data_error(exc)

# A dataset file altered after its fetch is newer than the runs trained on it, so Snakemake would
# retrain on it: check the files already on disk each time the workflow starts, before any job.
for _dataset in DATASETS_USED.values():
    _file = tensors_file(_dataset)
    try:
        if Path(_file).is_file():
            DATA_PINS.check(_file, DATA)
    except LTHError as exc:
        data_error(exc)


def fetch_options(wildcards):
    d = DATASETS_USED[wildcards.dataset]
    return " ".join(f"--option {k}={json.dumps(v)}" for k, v in sorted(d["options"].items()))


rule fetch:
    output:
        f"{DATA}/{{dataset}}/{TENSORS_FILE}",
    wildcard_constraints:
        dataset="|".join(DATASETS_USED) or "^$",
    params:
        name=lambda wc: DATASETS_USED[wc.dataset]["name"],
        options=fetch_options,
        download="--download" if config["download"] else "",
        pins=DATA_PINS.file,
    resources:
        mem_mb=4000,
        runtime=lambda wc, attempt: 60 * attempt,
    log:
        f"{DATA}/logs/fetch-{{dataset}}.log",
    # `lth verify` logs whether the file is pinned; a mismatch goes to the terminal and fails the job
    shell:
        "lth fetch {params.name} --data-dir {DATA} {params.download} {params.options} > {log} 2>&1 && "
        "lth verify --pins {params.pins:q} --data-dir {DATA} {output:q} >> {log}"
