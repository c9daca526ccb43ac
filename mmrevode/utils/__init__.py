"""Helpers of the command-line tools: ONNX export and results tables.

Imported on demand (``from mmrevode.utils.onnx_export import ...``), so that
``import mmrevode`` does not need onnx, onnxruntime or matplotlib.
"""
