"""tools/deployment/pytorch2onnx.py on a checkpoint that train.py wrote."""
import re

import numpy as np
import pytest
import torch
from tool_utils import assert_main_error, output, run_main, run_tool

pytest.importorskip('onnx')
ort = pytest.importorskip('onnxruntime')


def reported_differences(stdout):
    return [
        float(x) for x in re.findall(r'relative ([\d.e+-]+)\)', stdout)
    ]


def load_classifier(config, checkpoint):
    from mmpretrain.apis import get_model
    return get_model(str(config), pretrained=str(checkpoint)).eval()


@pytest.mark.slow
def test_export_agrees_with_pytorch(tiny_cifar_run, tmp_path, capsys):
    config, checkpoint = tiny_cifar_run
    onnx_file = tmp_path / 'tiny.onnx'
    assert run_main('deployment/pytorch2onnx.py', config, checkpoint,
                    '--output-file', onnx_file, '--shape', 32, 32) == 0
    stdout = capsys.readouterr().out
    differences = reported_differences(stdout)
    assert len(differences) == 1 and differences[0] <= 1e-4, stdout

    # the file holds the trained classifier: logits of backbone, neck, head
    model = load_classifier(config, checkpoint)
    images = torch.randn(1, 3, 32, 32)
    session = ort.InferenceSession(
        str(onnx_file), providers=['CPUExecutionProvider'])
    (logits, ) = session.run(None, {'input': images.numpy()})
    with torch.no_grad():
        expected = model(images, mode='tensor').numpy()
    assert logits.shape == (1, 10)
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_dynamic_export_and_tolerance(tiny_cifar_run, tmp_path, capsys):
    config, checkpoint = tiny_cifar_run
    onnx_file = tmp_path / 'dynamic.onnx'
    assert run_main('deployment/pytorch2onnx.py', config, checkpoint,
                    '--output-file', onnx_file, '--dynamic-export',
                    '--batch-size', 2) == 0
    stdout = capsys.readouterr().out
    assert 'input (2, 3, 32, 32)' in stdout
    assert 'input (3, 3, 64, 64)' in stdout
    differences = reported_differences(stdout)
    assert differences and all(d <= 1e-4 for d in differences), stdout

    # a tolerance no export can meet fails, with one message
    status = run_main('deployment/pytorch2onnx.py', config, checkpoint,
                      '--output-file', onnx_file, '--tolerance', '1e-20')
    assert_main_error(status, capsys.readouterr().err,
                      'Error: the ONNX model differs from PyTorch')


def test_missing_checkpoint_is_one_clear_message(tmp_path):
    """In a process of its own: the exit status and no traceback."""
    from tool_utils import REPO
    config = f'{REPO}/configs/revode/hamiltonian_digits.py'
    result = run_tool('deployment/pytorch2onnx.py', config,
                      tmp_path / 'none.pth', '--output-file',
                      tmp_path / 'x.onnx')
    assert result.returncode == 1, output(result)
    assert 'does not exist' in result.stderr
    assert 'Traceback' not in result.stderr


def test_checkpoint_of_another_model_is_refused(tmp_path, tiny_cifar_run,
                                                capsys):
    """No model of random weights is exported in place of the checkpoint's."""
    config, checkpoint = tiny_cifar_run
    status = run_main('deployment/pytorch2onnx.py', config, checkpoint,
                      '--output-file', tmp_path / 'x.onnx', '--cfg-options',
                      'model.backbone.arch.widths=[8,16,24]',
                      'model.head.in_channels=24')
    # another network (widths): its recorded definition differs
    assert_main_error(
        status, capsys.readouterr().err,
        f'The checkpoint {checkpoint} was trained with backbone arch=',
        'model.backbone.arch')
    assert not (tmp_path / 'x.onnx').exists()
