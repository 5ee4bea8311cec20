"""Training: data, models, fitting, evaluation and ONNX export (needs qc[train])."""
