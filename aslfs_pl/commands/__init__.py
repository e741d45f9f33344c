"""Command-line entry points (installed as console scripts; scripts/*.py call them too):

aslfs-fit       aslfs_pl.cli:run                       (scripts/fit.py)
aslfs-export    aslfs_pl.commands.export_tflite:main   (scripts/export_tflite.py)
aslfs-evaluate  aslfs_pl.commands.evaluate:main        (scripts/evaluate.py)
aslfs-predict   aslfs_pl.commands.predict:main         (scripts/predict.py)
"""
