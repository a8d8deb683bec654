"""Scores: settings → the scorer of NB201 cells (and of any JAX model) → the per-cell formulas → the result."""
