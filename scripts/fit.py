"""Train: ``python scripts/fit.py [--accelerator tpu|gpu|cpu] [--config configs/x.yaml] ...``."""

from aslfs_pl.cli import main

if __name__ == "__main__":
    main()
