"""Train: ``python scripts/fit.py [--accelerator tpu|gpu|cpu] [--config configs/x.yaml] ...``
(also installed as the console script ``aslfs-fit``)."""

from aslfs_pl.cli import run

if __name__ == "__main__":
    run()
