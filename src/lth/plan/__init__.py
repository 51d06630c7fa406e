"""Planning: what an experiment runs and where, decided from its settings alone. Torch-free, so
that parsing the workflow stays cheap.

    settings, schema, checks, facts   the settings: validated once, defaults filled in, frozen
    fingerprints                       per-stage fingerprints that name the artifacts' folders
    variants                           variants as data (weights-from, mask-from, schedule, chain)
    layout                             a run key -> its folder and files
    job                                a job, its stages and the files it leaves
    imp, oneshot                       the experiment kinds: their runs, jobs, checks, fingerprints
    config, pretrained                 the workflow's config, and experiments that start from another

May import only lth.core (and itself); no torch.
"""

from lth.plan.imp import Plan, check_results_folder, plan_of
from lth.plan.job import GROUPED, STAGES, Job

__all__ = ["GROUPED", "STAGES", "Job", "Plan", "check_results_folder", "plan_of"]
