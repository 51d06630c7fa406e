# Stages 2-4: dense training, then one job per (seed, level, mask chain) that prunes the chain's
# previous level and trains the chain's variants. Level L of a chain and seed waits only on
# level L-1 of the same chain and seed, so seeds and chains run in parallel.
# Training jobs ask for a GPU (`gpu` resource) so a cluster profile can place them; locally
# they use one when visible and the CPU otherwise.


rule settings:
    """Record the experiment's settings beside its results (refused at parse time if they changed)."""
    output:
        f"{RESULTS}/{{exp}}/settings.json",
    params:
        settings=lambda wc: json.dumps(EXPERIMENTS[wc.exp], sort_keys=True),
    localrule: True
    shell:
        "lth claim --results {RESULTS}/{wildcards.exp} --settings-json {params.settings:q}"


TRAIN_RESOURCES = dict(mem_mb=4000, runtime=lambda wc, attempt: 120 * attempt, gpu=1)


rule dense:
    input:
        settings=f"{RESULTS}/{{exp}}/settings.json",
        data=dataset_file,
        tracking=tracking_store,
    output:
        metrics=f"{RESULTS}/{{exp}}/seed{{seed}}/level00/{DENSE}/metrics.json",
        final=f"{RESULTS}/{{exp}}/seed{{seed}}/level00/{DENSE}/final.safetensors",
        mask=f"{RESULTS}/{{exp}}/seed{{seed}}/level00/{DENSE}/mask.safetensors",
        init=f"{RESULTS}/{{exp}}/seed{{seed}}/level00/{DENSE}/init.safetensors",
        rewind=f"{RESULTS}/{{exp}}/seed{{seed}}/level00/{DENSE}/rewind.safetensors",
    params:
        flags=lambda wc, threads: run_flags(wc, threads),
    threads: config["threads"]
    resources:
        **TRAIN_RESOURCES,
    log:
        f"{RESULTS}/{{exp}}/logs/seed{{seed}}-level00-dense.log",
    shell:
        "lth train {params.flags} --seed {wildcards.seed} > {log} 2>&1"


def previous_level(wildcards):
    level = int(wildcards.level)
    if level == 1:
        return f"{RESULTS}/{wildcards.exp}/seed{wildcards.seed}/level00/{DENSE}/metrics.json"
    return f"{RESULTS}/{wildcards.exp}/seed{wildcards.seed}/level{level - 1:02d}/{wildcards.chain}.json"


def chain_variants(wildcards):
    variants = chains(EXPERIMENTS[wildcards.exp]["variants"])[wildcards.chain]
    return " ".join(f"--variant {v}" for v in variants)


rule level:
    """Prune level L of a mask chain and train its variants (e.g. ticket, reinit, random_prune)."""
    input:
        settings=f"{RESULTS}/{{exp}}/settings.json",
        data=dataset_file,
        tracking=tracking_store,
        previous=previous_level,
        # every variant of the ticket chain and random pruning start from theta_k of the dense run
        rewind=f"{RESULTS}/{{exp}}/seed{{seed}}/level00/{DENSE}/rewind.safetensors",
    output:
        f"{RESULTS}/{{exp}}/seed{{seed}}/level{{level}}/{{chain}}.json",
    params:
        flags=lambda wc, threads: run_flags(wc, threads),
        variants=chain_variants,
    threads: config["threads"]
    resources:
        **TRAIN_RESOURCES,
    log:
        f"{RESULTS}/{{exp}}/logs/seed{{seed}}-level{{level}}-{{chain}}.log",
    shell:
        "lth level {params.flags} --seed {wildcards.seed} --level {wildcards.level} "
        "--chain {wildcards.chain} {params.variants} > {log} 2>&1"
