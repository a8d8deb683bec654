python benchmarks/speed.py --engines layerwise --kernels clean --batch-sizes 16 --arch-batches 1 2 --repeats 1 --out benchmarks/results/speed_arch_batch.md
