"""Export a classifier to ONNX and check it against PyTorch in onnxruntime."""
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn


class ClassifierLogits(nn.Module):
    """An MMPretrain classifier as ``images -> logits``, for export.

    Runs ``model(images, mode='tensor')``: backbone, neck and head, the
    head's scores before softmax. The data preprocessor is not part of it:
    the input is the normalised image batch (N, C, H, W) that the config's
    ``data_preprocessor`` makes, as in MMDeploy.

    Args:
        model (nn.Module): An ``ImageClassifier``.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: Tensor) -> Tensor:
        out = self.model(images, mode='tensor')
        if isinstance(out, (tuple, list)):  # a classifier without a head
            out = out[-1]
        return out


def export_onnx(module: nn.Module,
                images: Tensor,
                output_file: str,
                dynamic: bool = False,
                opset_version: Optional[int] = None,
                dynamo: bool = False) -> None:
    """Export ``module`` (in eval mode) to ``output_file``.

    Args:
        module (nn.Module): The module; put in eval mode.
        images (Tensor): An example input (N, C, H, W).
        output_file (str): The ONNX file to write.
        dynamic (bool): Make the batch size, height and width dynamic.
            Defaults to False.
        opset_version (int, optional): ONNX opset. Defaults to None
            (the exporter's default).
        dynamo (bool): Use the exporter based on ``torch.export`` (needs
            onnxscript) instead of the TorchScript-based one that MMDeploy
            uses. Defaults to False.
    """
    module.eval()
    kwargs = dict(input_names=['input'], output_names=['logits'])
    if dynamic:
        kwargs['dynamic_axes'] = {
            'input': {
                0: 'batch',
                2: 'height',
                3: 'width'
            },
            'logits': {
                0: 'batch'
            }
        }
    if opset_version is not None:
        kwargs['opset_version'] = opset_version
    torch.onnx.export(
        module, (images, ), output_file, dynamo=dynamo, **kwargs)


def compare_with_onnxruntime(module: nn.Module, onnx_file: str,
                             images: Tensor) -> Dict[str, float]:
    """Run ``onnx_file`` in onnxruntime and ``module`` in PyTorch on
    ``images``; return how far apart the outputs are.

    Returns:
        dict: ``max_abs_diff`` (the largest absolute difference),
        ``max_abs`` (the largest absolute PyTorch output) and
        ``rel_diff`` (their ratio).
    """
    import onnxruntime as ort

    session = ort.InferenceSession(
        onnx_file, providers=['CPUExecutionProvider'])
    name = session.get_inputs()[0].name
    out = session.run(None, {name: images.numpy()})[0]
    with torch.no_grad():
        expected = module.eval()(images).numpy()
    if out.shape != expected.shape:
        raise RuntimeError(f'ONNX output shape {out.shape} differs from '
                           f'PyTorch\'s {expected.shape}.')
    max_abs_diff = float(np.abs(out - expected).max())
    max_abs = float(np.abs(expected).max())
    return dict(
        max_abs_diff=max_abs_diff,
        max_abs=max_abs,
        rel_diff=max_abs_diff / max(max_abs, 1e-30))


def example_inputs(shape: Sequence[int],
                   batch_size: int = 1,
                   in_channels: int = 3,
                   dynamic: bool = False,
                   seed: int = 0) -> Tuple[Tensor, ...]:
    """Random normal inputs to export with and to check on.

    Returns the export input (``batch_size``, ``in_channels``, H, W) and,
    with ``dynamic``, a second input of another batch size and twice the
    size, to check that the shapes are really dynamic.
    """
    generator = torch.Generator().manual_seed(seed)
    h, w = shape
    inputs = [torch.randn(batch_size, in_channels, h, w, generator=generator)]
    if dynamic:
        inputs.append(
            torch.randn(
                batch_size + 1,
                in_channels,
                2 * h,
                2 * w,
                generator=generator))
    return tuple(inputs)
