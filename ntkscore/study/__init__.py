"""Studies over many cells: resumable rankings, benchmark tables, correlations, formula fitting."""
