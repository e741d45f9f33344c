"""Thin wrapper: see aslfs_pl/commands/predict.py (also installed as a console script)."""

from aslfs_pl.commands.predict import main

if __name__ == "__main__":
    main()
