python benchmarks/speed.py --engines layerwise --kernels all --batch-sizes 16 --family on off --repeats 1 --out benchmarks/results/speed_family.md
