"""The NAS-Bench-201 cell: the search space (strings, isomorphism), the network with the cell as data, its cost."""
