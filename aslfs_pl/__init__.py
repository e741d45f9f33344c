"""aslfs_pl: a PyTorch Lightning trainer for Kaggle's ASL Fingerspelling Recognition."""

__version__ = "0.1.0"
