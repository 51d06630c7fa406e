# Stages 2-5, the training jobs. Which jobs exist, what each reads and what it writes is the
# plan's (lth.plan.imp); each rule runs one job with `lth job STAGE`, which reads the experiment's
# settings.json and trains the job's runs in one process (together, up to `batching` in one step):
#   dense     (seed)               the dense network, level 0
#   rewind    (seed, k)            theta_k for a rewind point k > 0 (the dense run replayed to k)
#   level     (level, chain)       every seed: prune the chain's previous level, train its head
#   controls  (levels, chain)      every seed: the chain's other variants at a few levels
#   transfer  (target, level)      every seed: the level's transfer runs on one target dataset
# A level, controls or transfer job's marker is named by the id of the runs it holds: adding a seed,
# variant or level makes a new job (which trains only the runs not finished yet); removing one is
# covered by the earlier marker (Plan.done), so nothing trains.
# Level L of a chain waits only on level L-1 of the chain, never on the controls. When jobs wait for
# a core, the chain's (dense, rewind, level) go first, as the rest wait on them; then the controls,
# the longest of the rest (priority). Training jobs ask for a GPU (`gpu` resource) so a cluster
# profile can place them; locally they use one when visible and the CPU otherwise. Command lines
# carry only wildcards (names and numbers that the constraints in common.smk admit) and quoted paths.


rule settings:
    """Record the experiment's plan (resolved settings, fingerprints, workflow options) for its jobs."""
    output:
        PATTERNS["settings"],
    log:
        PATTERNS["settings_log"],
    localrule: True
    params:
        record=lambda wc: PLANS[wc.exp].record(),
    run:
        write_settings(wildcards.exp, log[0])


rule dense:
    input:
        unpack(job_inputs("dense")),
    output:
        *PATTERNS["dense"],
    log:
        PATTERNS["dense_log"],
    priority: 2
    threads: config["threads"]
    resources:
        **train_resources("dense"),
    params:
        root=experiment_root,
        key=lambda wc: f"--seed {int(wc.seed)}",
    shell:
        job_command("dense")


rule rewind:
    input:
        unpack(job_inputs("rewind")),
    output:
        *PATTERNS["rewind"],
    log:
        PATTERNS["rewind_log"],
    priority: 2
    threads: config["threads"]
    resources:
        **train_resources("rewind"),
    params:
        root=experiment_root,
        key=lambda wc: f"--seed {int(wc.seed)} --k {int(wc.k)}",
    shell:
        job_command("rewind")


rule level:
    input:
        unpack(job_inputs("level")),
    output:
        *PATTERNS["level"],
    log:
        PATTERNS["level_log"],
    priority: 2
    threads: config["threads"]
    resources:
        **train_resources("level"),
    params:
        root=experiment_root,
        key=lambda wc: f"--level {int(wc.level)} --chain {wc.chain} --runs {wc.runs}",
    shell:
        job_command("level")


rule controls:
    input:
        unpack(job_inputs("controls")),
    output:
        *PATTERNS["controls"],
    log:
        PATTERNS["controls_log"],
    priority: 1
    threads: config["threads"]
    resources:
        **train_resources("controls"),
    params:
        root=experiment_root,
        key=lambda wc: f"--level {int(wc.level)} --to {int(wc.to)} --chain {wc.chain} --runs {wc.runs}",
    shell:
        job_command("controls")


rule transfer:
    input:
        unpack(job_inputs("transfer")),
    output:
        *PATTERNS["transfer"],
    log:
        PATTERNS["transfer_log"],
    threads: config["threads"]
    resources:
        **train_resources("transfer"),
    params:
        root=experiment_root,
        key=lambda wc: f"--target {wc.target} --level {int(wc.level)} --runs {wc.runs}",
    shell:
        job_command("transfer")


rule probe:
    """The runs an analysis trains for itself (lth.analyses), e.g. instability's two copies."""
    input:
        unpack(job_inputs("probe")),
    output:
        *PATTERNS["probe"],
    log:
        PATTERNS["probe_log"],
    threads: config["threads"]
    resources:
        **train_resources("probe"),
    params:
        root=experiment_root,
        key=lambda wc: f"--seed {int(wc.seed)} --level {int(wc.level)} --chain {wc.chain} --k {int(wc.k)}",
    shell:
        job_command("probe")
