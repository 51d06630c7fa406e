"""Datasets: made (sources, and the generators grammar, modular_arithmetic, sparse_linear), fetched
into a tensors file and pinned (fetch, pins), loaded with a seeded validation split (splits),
augmented (augment) and adapted to another model's inputs (adapt).

May import lth.core and lth.plan.imp.
"""
