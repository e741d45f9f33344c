"""What the benchmark and plotting scripts share (``scripts/bench_*.py``, ``scripts/plot_*.py``):
a training run's held-out score, training curves, landmark strips. Nothing that trains or
exports imports this package."""
