"""lth: lottery-ticket experiments, reproducibly."""
__version__ = "0.1.0"
