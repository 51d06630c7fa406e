"""The foundation every other package stands on: the one user-facing exception (errors), atomic
file writes (files), seeds derived from names (seeding), registries of named parts (registry), the
catalogue of every registered part (parts), locks that hold on shared filesystems (lockfile) and a
job's stop on preemption (preemption). Torch-free. May import nothing else of lth.
"""
