"""Pruning scores, one module each (lth.core.parts.SCORES): `score(weights, mask, context)` -> a
score per prunable weight, the lowest pruned first."""
