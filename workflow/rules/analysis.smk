# Analyses (lth.analyses): each registered analysis an experiment lists under `analyses` is one
# job over the experiment's finished runs, writing a table beside summary.csv.

from lth.parts import ANALYSES


def analysis_csv(exp, name):
    return f"{RESULTS}/{exp}/analysis-{name}.csv"


rule analysis:
    input:
        settings=lambda wc: settings_json(wc.exp),
        runs=lambda wc: [str(p) for p in PLANS[wc.exp].targets()],
    output:
        f"{RESULTS}/{{exp}}/analysis-{{analysis}}.csv",
    wildcard_constraints:
        analysis="|".join(ANALYSES) or "^$",
    params:
        root=experiment_root,
    log:
        f"{RESULTS}/{{exp}}/logs/analysis-{{analysis}}.log",
    shell:
        "lth analyse {wildcards.analysis} --results {params.root:q} > {log:q} 2>&1"
