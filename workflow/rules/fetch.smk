# Stage 1: materialise a dataset (generate it offline, or through torchvision) and verify it against
# the md5 that data.dvc pins (lth.pins): training never starts on other bytes than the pinned ones.
# Nothing is hashed at parse time: each training job checks the pinned files it reads.

import json
import shlex

from lth import pins
from lth.layout import TENSORS_FILE


def data_error(message):
    sys.exit(f"lth data error: {message}")


try:
    DATA_PINS = pins.load(f"{workflow.basedir}/data.dvc")
except LTHError as exc:
    data_error(exc)


def datasets_of(exp):
    """Dataset settings an experiment uses: its source, then its transfer targets."""
    s = PLANS[exp].settings
    return [s.dataset] + [t.dataset for t in s.transfer.targets.values()]


# Every dataset the config uses: folder name -> dataset settings.
DATASETS_USED = {tensors_file(DATA, d).parent.name: d for exp in EXPERIMENTS for d in datasets_of(exp)}


def fetch_options(wildcards):
    d = DATASETS_USED[wildcards.dataset]
    return " ".join(shlex.quote(f"--option={k}={json.dumps(v)}") for k, v in sorted(d.options.thaw().items()))


rule fetch:
    output:
        f"{DATA}/{{dataset}}/{TENSORS_FILE}",
    wildcard_constraints:
        dataset="|".join(DATASETS_USED) or "^$",
    params:
        name=lambda wc: DATASETS_USED[wc.dataset].name,
        options=fetch_options,
        download="--download" if config["download"] else "",
        pins=DATA_PINS.file,
        data=DATA,
    resources:
        mem_mb=4000,
        runtime=lambda wc, attempt: 60 * attempt,
    log:
        f"{DATA}/logs/fetch-{{dataset}}.log",
    # `lth verify` logs whether the file is pinned; a mismatch goes to the terminal and fails the job
    shell:
        "lth fetch {params.name:q} --data-dir {params.data:q} {params.download} {params.options} > {log:q} 2>&1 && "
        "lth verify --pins {params.pins:q} --data-dir {params.data:q} {output:q} >> {log:q}"
