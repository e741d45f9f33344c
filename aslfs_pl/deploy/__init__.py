"""Deployment: the network as one TFLite file with Kaggle's signature, and checks of it.

graph.py     the deployment graph: Kaggle's signature around the network's export form
             (each layer's twin lives beside the layer, see aslfs_pl/export_ops.py)
contract.py  what Kaggle's evaluator reads: file names, the signature
convert.py   litert-torch conversion, inference_args.json, submission.zip
runtime.py   the TFLite runner (as Kaggle's evaluator runs it)
parity.py    TFLite vs PyTorch, per weight type
stages.py    stage errors, timing and progress display
"""
