# Stage 1: materialise a dataset (generate it offline, or through torchvision).

DATASETS_USED = {dataset_id(e): EXPERIMENTS[e]["dataset"] for e in EXPERIMENTS}


def fetch_options(wildcards):
    d = DATASETS_USED[wildcards.dataset]
    return " ".join(f"--option {k}={json.dumps(v)}" for k, v in sorted(d["options"].items()))


rule fetch:
    output:
        f"{DATA}/{{dataset}}/tensors.safetensors",
    wildcard_constraints:
        dataset="|".join(DATASETS_USED) or "^$",
    params:
        name=lambda wc: DATASETS_USED[wc.dataset]["name"],
        options=fetch_options,
        download="--download" if config["download"] else "",
    resources:
        mem_mb=4000,
        runtime=60,
    log:
        f"{DATA}/logs/fetch-{{dataset}}.log",
    shell:
        "lth fetch {params.name} --data-dir {DATA} {params.download} {params.options} > {log} 2>&1"
