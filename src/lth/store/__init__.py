"""Where results are kept, and read back verified: tensor files and checkpoints (artifacts), a run's
record (results), the experiment's tables (summary), the check of a whole results folder
(integrity), and MLflow tracking (tracking).

May import lth.core, lth.plan.imp, lth.data (pins) and lth.pruning (masks).
"""
