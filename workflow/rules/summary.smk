# Stage 6: one tidy table per experiment.


def level_records(wildcards):
    s = EXPERIMENTS[wildcards.exp]
    root = f"{RESULTS}/{wildcards.exp}"
    dense = [f"{root}/seed{seed}/level00/{DENSE}/metrics.json" for seed in s["seeds"]]
    return dense + [
        f"{root}/seed{seed}/level{level:02d}/{chain}.json"
        for seed in s["seeds"]
        for level in range(1, s["pruning"]["levels"] + 1)
        for chain in chains(s["variants"])
    ] + [
        f"{root}/seed{seed}/transfer-{target}.json" for seed in s["seeds"] for target in s["transfer"]["targets"]
    ]


rule summary:
    input:
        level_records,
    output:
        summary=f"{RESULTS}/{{exp}}/summary.csv",
        densities=f"{RESULTS}/{{exp}}/layer_density.csv",
    params:
        settings=settings_json,
    resources:
        mem_mb=2000,
        runtime=10,
    localrule: True
    shell:
        "lth summarize --experiment {wildcards.exp} --results {RESULTS}/{wildcards.exp} "
        "--settings-json {params.settings:q}"
