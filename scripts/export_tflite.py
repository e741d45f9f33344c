"""Thin wrapper: see aslfs_pl/commands/export_tflite.py (also installed as a console script)."""

from aslfs_pl.commands.export_tflite import main

if __name__ == "__main__":
    main()
