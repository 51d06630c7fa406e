# Stage 5: tickets found on the source dataset, trained on each transfer target. One job per
# (seed, target), for all transferred levels: level 0 trains the dense network on the target;
# level L >= 1 trains ticket_transfer, mask_transfer and random_prune with the source's level-L
# ticket mask (one process amortises the start-up over all of them).


def transfer_sources(wildcards):
    root = f"{RESULTS}/{wildcards.exp}/seed{wildcards.seed}"
    levels = transfer_levels(EXPERIMENTS[wildcards.exp])
    return [f"{root}/level00/{DENSE}/metrics.json"] + [f"{root}/level{level:02d}/ticket.json" for level in levels[1:]]


def transfer_args(wildcards):
    s = EXPERIMENTS[wildcards.exp]
    levels = " ".join(map(str, transfer_levels(s)))
    return f"--levels {levels} " + " ".join(f"--variant {v}" for v in s["transfer"]["variants"])


rule transfer:
    input:
        settings=f"{RESULTS}/{{exp}}/settings.json",
        data=dataset_file,
        tracking=tracking_store,
        sources=transfer_sources,
        rewind=f"{RESULTS}/{{exp}}/seed{{seed}}/level00/{DENSE}/rewind.safetensors",
    output:
        f"{RESULTS}/{{exp}}/seed{{seed}}/transfer-{{target}}.json",
    params:
        flags=lambda wc, threads: run_flags(wc, threads),
        runs=transfer_args,
    threads: config["threads"]
    resources:
        **TRAIN_RESOURCES,
    log:
        f"{RESULTS}/{{exp}}/logs/seed{{seed}}-transfer-{{target}}.log",
    shell:
        "lth transfer {params.flags} --seed {wildcards.seed} --target {wildcards.target} {params.runs} > {log} 2>&1"
