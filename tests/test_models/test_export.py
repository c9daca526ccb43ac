"""FLOPs, ``torch.jit.trace`` and ONNX export of every backbone.

Each backbone is built at its defaults and put in eval mode; nothing runs
under ``torch.no_grad()``, as a user of MMPretrain's ``get_flops.py``,
``torch.jit.trace`` or MMDeploy would call them.
"""
import io
import warnings

import numpy as np
import pytest
import torch
from mmengine.analysis import get_model_complexity_info

from mmrevode.models import (CifarResNet, HamiltonianNet, LeapfrogNet,
                             MidpointNet, RevNet)

BACKBONES = {
    'HamiltonianNet': lambda: HamiltonianNet(),
    'MidpointNet': lambda: MidpointNet(),
    'LeapfrogNet': lambda: LeapfrogNet(),
    'RevNet': lambda: RevNet(),
    'CifarResNet': lambda: CifarResNet(depth=20),
}
REVERSIBLE = ['HamiltonianNet', 'MidpointNet', 'LeapfrogNet', 'RevNet']


def build(name, **kwargs):
    torch.manual_seed(0)
    model = BACKBONES[name]() if not kwargs else globals()[name](**kwargs)
    model.init_weights()
    # non-trivial running statistics, so that eval mode differs from train
    model.train()
    with torch.no_grad():
        model(torch.randn(8, 3, 32, 32))
    return model.eval()


@pytest.fixture
def image():
    torch.manual_seed(1)
    return torch.randn(1, 3, 32, 32)


@pytest.mark.parametrize('name', list(BACKBONES))
def test_flops(name, image):
    model = build(name)
    assert torch.is_grad_enabled()
    result = get_model_complexity_info(model, inputs=(image, ))
    assert result['params'] == sum(p.numel() for p in model.parameters())
    assert result['flops'] > 0
    assert '#parameters' in result['out_table'] and '#flops' in \
        result['out_table']
    if name in REVERSIBLE:
        # the units are counted, and count as in plain mode
        plain = build(name, mode='plain')
        assert result['flops'] == get_model_complexity_info(
            plain, inputs=(image, ), show_table=False,
            show_arch=False)['flops']
        assert 'units.0' in result['out_table']


@pytest.mark.parametrize('name', list(BACKBONES))
def test_jit_trace(name, image):
    model = build(name)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        traced = torch.jit.trace(model, image)
    other = torch.randn(2, 3, 32, 32)
    for out, expected in zip(traced(other), model(other)):
        torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)


def onnx_max_relative_error(model, image, **export_kwargs):
    """Export ``model`` to ONNX, run it in onnxruntime on ``image`` and
    return the largest difference over the largest output magnitude."""
    ort = pytest.importorskip('onnxruntime')
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.onnx.export(
            model, (image, ),
            buffer,
            input_names=['input'],
            output_names=['features'],
            **export_kwargs)
    session = ort.InferenceSession(
        buffer.getvalue(), providers=['CPUExecutionProvider'])
    out = session.run(None, {'input': image.numpy()})[0]
    expected = model(image)[-1].detach().numpy()
    assert out.shape == expected.shape
    return float(np.abs(out - expected).max() / np.abs(expected).max())


@pytest.mark.parametrize('name', list(BACKBONES))
def test_onnx_export_agrees_with_pytorch(name, image):
    pytest.importorskip('onnx')
    error = onnx_max_relative_error(build(name), image, dynamo=False)
    assert error <= 1e-4, error


def test_onnx_export_with_torch_export():
    """The exporter based on ``torch.export`` (torch's default) too."""
    pytest.importorskip('onnxscript')
    error = onnx_max_relative_error(
        build('HamiltonianNet'), torch.randn(1, 3, 32, 32), dynamo=True)
    assert error <= 1e-4, error


@pytest.mark.parametrize('name', REVERSIBLE)
def test_exact_mode_counts_traces_and_exports(name, image):
    """Exact mode (fixed-point pairs): FLOPs as the floating-point network
    (the rounding is elementwise), a trace and an ONNX model that give
    its outputs."""
    model = build(name, exact=True)
    floating = build(name)
    flops = get_model_complexity_info(
        model, inputs=(image, ), show_table=False, show_arch=False)['flops']
    assert flops == get_model_complexity_info(
        floating, inputs=(image, ), show_table=False,
        show_arch=False)['flops']
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        traced = torch.jit.trace(model, image)
    other = torch.randn(2, 3, 32, 32)
    for out, expected in zip(traced(other), model(other)):
        assert torch.equal(out, expected)
    if name == 'HamiltonianNet':
        pytest.importorskip('onnx')
        error = onnx_max_relative_error(model, image, dynamo=False)
        assert error <= 1e-4, error
