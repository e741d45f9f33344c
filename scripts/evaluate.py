"""Thin wrapper: see aslfs_pl/commands/evaluate.py (also installed as a console script)."""

from aslfs_pl.commands.evaluate import main

if __name__ == "__main__":
    main()
