"""The foundation every other package stands on: the one user-facing exception (errors), atomic
file writes (files), seeds derived from names (seeding), registries of named parts (registry) and
the catalogue of every registered part (parts). Torch-free. May import nothing else of lth.
"""
