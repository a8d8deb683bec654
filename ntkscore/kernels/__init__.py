"""Empirical NTKs (generic and layerwise engines, the fused per-cell program), their theory and the NTK family."""
