"""The tools refuse weights of another network, with one line.

On the checkpoint of a tiny Hamiltonian network trained by tools/train.py
(``tiny_cifar_run``), the tools' ``main(argv)`` run in this process:
tools/test.py with another step size, a checkpoint written before
definitions were recorded and its conversion, demo/image_demo.py and
tools/deployment/pytorch2onnx.py.
"""
import mmcv
import numpy as np
import pytest
import torch
from tool_utils import (error_line, load_script, tiny_config,
                        wait_for_a_new_run_name)

from mmrevode.engine import load_from_local

DEFINITION = 'backbone._extra_state'


class Script:
    """A script loaded as a module: its ``main`` run in this process (in a
    second of its own, see ``wait_for_a_new_run_name``) and its names."""

    def __init__(self, path):
        self.module = load_script(path)

    def main(self, argv):
        wait_for_a_new_run_name()
        return self.module.main(argv)

    def __getattr__(self, name):
        return getattr(self.module, name)


@pytest.fixture(scope='module')
def scripts():
    return {
        name: Script(path)
        for name, path in (('test', 'tools/test.py'),
                           ('convert',
                            'tools/model_converters/add_definition.py'),
                           ('demo', 'demo/image_demo.py'),
                           ('onnx', 'tools/deployment/pytorch2onnx.py'))
    }


def metrics(out):
    return [line for line in out.splitlines()
            if line.startswith('accuracy/top1: ')]


def test_test_py_refuses_another_step_size(scripts, tiny_cifar_run, tmp_path,
                                           capsys):
    config, checkpoint = tiny_cifar_run
    args = [config, str(checkpoint), '--work-dir', str(tmp_path)]
    assert scripts['test'].main(
        args + ['--cfg-options', 'model.backbone.h=0.05']) == 1
    out, err = capsys.readouterr()
    assert error_line(err) == (
        f'Error: The checkpoint {checkpoint} was trained with backbone '
        'h=0.1; this model has h=0.05 (model.backbone.h). Set it to 0.1, or '
        'set model.backbone.check_definition=False to run this different '
        'network with these weights on purpose.')
    assert not metrics(out)
    # --partial-load is about weights, not the network: refused as well
    assert scripts['test'].main(
        args + ['--partial-load', '--cfg-options', 'model.backbone.h=0.05'
                ]) == 1
    assert 'h=0.05 (model.backbone.h)' in error_line(capsys.readouterr()[1])

    # the documented override evaluates the other network on purpose
    assert scripts['test'].main(args + [
        '--cfg-options', 'model.backbone.h=0.05',
        'model.backbone.check_definition=False'
    ]) == 0
    out, err = capsys.readouterr()
    assert len(metrics(out)) == 1, out
    assert 'loading its weights into this different network on purpose ' \
        '(check_definition=False)' in out + err


def test_checkpoint_without_definition_is_converted(scripts, tiny_cifar_run,
                                                    cifar_root, tmp_path,
                                                    capsys):
    config, checkpoint = tiny_cifar_run
    trained = load_from_local(str(checkpoint))
    assert trained['state_dict'][DEFINITION].dtype == torch.uint8
    old = dict(trained, state_dict={
        k: v for k, v in trained['state_dict'].items() if k != DEFINITION})
    old_path, new_path = tmp_path / 'old.pth', tmp_path / 'new.pth'
    torch.save(old, old_path)
    args = ['--work-dir', str(tmp_path / 'work')]

    assert scripts['test'].main([config, str(old_path)] + args) == 1
    message = error_line(capsys.readouterr()[1])
    assert message.startswith(f'Error: The checkpoint {old_path} holds '
                              'HamiltonianNet weights but not the '
                              'definition of their network')
    assert '`python tools/model_converters/add_definition.py CONFIG ' \
        'CHECKPOINT OUTPUT [--cfg-options ...]`' in message

    # a config of another network: refused, nothing written
    midpoint = tiny_config(tmp_path / 'midpoint.py', 'midpoint_cifar10.py',
                           cifar_root)
    assert scripts['convert'].main(
        [midpoint, str(old_path), str(new_path)]) == 1
    assert 'does not fit the model of the config' in error_line(
        capsys.readouterr()[1])
    assert not new_path.exists()

    assert scripts['convert'].main([config, str(old_path),
                                    str(new_path)]) == 0
    out = capsys.readouterr()[0]
    assert f"Recorded {DEFINITION}: type='HamiltonianNet', arch=" in out
    assert 'h=0.1' in out
    converted = load_from_local(str(new_path))
    assert converted.keys() == trained.keys()
    assert converted['state_dict'].keys() == trained['state_dict'].keys()
    for key, value in trained['state_dict'].items():
        assert torch.equal(converted['state_dict'][key], value), key
    assert scripts['test'].main([config, str(new_path)] + args) == 0
    assert len(metrics(capsys.readouterr()[0])) == 1

    # a recorded definition is never overwritten by another one
    assert scripts['convert'].main([
        config, str(new_path), str(tmp_path / 'other.pth'), '--cfg-options',
        'model.backbone.h=0.02'
    ]) == 1
    assert 'h=0.1; this model has h=0.02' in error_line(
        capsys.readouterr()[1])


@pytest.fixture
def image_file(tmp_path):
    def write(height, width):
        image = np.random.default_rng(0).integers(
            0, 256, (height, width, 3), dtype=np.uint8)
        path = tmp_path / f'image_{height}x{width}.png'
        mmcv.imwrite(image, str(path))
        return str(path)

    return write


def test_demo_needs_weights(scripts, tiny_cifar_run, image_file, capsys):
    config, _ = tiny_cifar_run
    with pytest.raises(SystemExit) as exited:
        scripts['demo'].main([image_file(32, 32), config])
    assert exited.value.code == 2
    assert 'one of the arguments --checkpoint --random-weights is required' \
        in capsys.readouterr()[1]

    assert scripts['demo'].main(
        [image_file(32, 32), config, '--random-weights', '--topk', '3']) == 0
    lines = capsys.readouterr()[0].strip().splitlines()
    predictions = [line for line in lines if '(class ' in line]
    assert len(predictions) == 3
    assert all(line.endswith(scripts['demo'].RANDOM_WEIGHTS_MARK)
               for line in predictions), lines


def test_demo_refuses_a_checkpoint_of_another_network(
        scripts, tiny_cifar_run, cifar_root, image_file, tmp_path, capsys):
    _, checkpoint = tiny_cifar_run
    midpoint = tiny_config(tmp_path / 'midpoint.py', 'midpoint_cifar10.py',
                           cifar_root)
    assert scripts['demo'].main(
        [image_file(32, 32), midpoint, '--checkpoint', str(checkpoint)]) == 1
    out, err = capsys.readouterr()
    assert error_line(err).startswith(
        f'Error: The checkpoint {checkpoint} was trained with backbone '
        "type='HamiltonianNet'; this model has type='MidpointNet' "
        '(model.backbone.type).')
    assert '(class ' not in out


def test_demo_warns_about_the_image_size(scripts, tiny_cifar_run, image_file,
                                         capsys):
    config, checkpoint = tiny_cifar_run
    image = image_file(40, 36)
    assert scripts['demo'].main(
        [image, config, '--checkpoint', str(checkpoint)]) == 0
    out, err = capsys.readouterr()
    warnings = [line for line in err.splitlines()
                if line.startswith('Warning:')]
    assert warnings == [
        f'Warning: the image is 40x36, but the model of {config} works at '
        '32x32 and its test pipeline does not resize: pass --image-size 32 '
        '32 to resize it.'
    ]
    assert '(class ' in out and 'RANDOM' not in out
    assert scripts['demo'].main([
        image, config, '--checkpoint', str(checkpoint), '--image-size', '32'
    ]) == 0
    assert 'Warning:' not in capsys.readouterr()[1]


def test_pytorch2onnx_refuses_another_step_size(scripts, tiny_cifar_run,
                                                tmp_path, capsys):
    pytest.importorskip('onnx')
    config, checkpoint = tiny_cifar_run
    onnx_file = tmp_path / 'x.onnx'
    assert scripts['onnx'].main([
        config, str(checkpoint), '--output-file', str(onnx_file),
        '--cfg-options', 'model.backbone.h=0.2'
    ]) == 1
    assert error_line(capsys.readouterr()[1]).startswith(
        f'Error: The checkpoint {checkpoint} was trained with backbone '
        'h=0.1; this model has h=0.2 (model.backbone.h).')
    assert not onnx_file.exists()


def test_class_names_of_a_checkpoint_must_be_the_configs():
    """The demo prints names: a checkpoint cannot rename the classes."""
    from mmengine.config import Config

    from mmrevode.engine import CheckpointMismatchError
    from mmrevode.utils.tools import class_names
    cfg = Config(dict(test_dataloader=dict(dataset=dict(
        type='CheckedCIFAR10'))))
    cifar = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog',
             'horse', 'ship', 'truck']
    assert class_names(cfg, dict(meta=dict(dataset_meta=dict(
        classes=cifar))), 10, 'c.pth') == cifar
    assert class_names(cfg, {}, 10, 'c.pth') == cifar
    for classes in (cifar[1:] + cifar[:1], ['cat'], 'x', 3):
        with pytest.raises(CheckpointMismatchError, match='names the classes'):
            class_names(cfg, dict(meta=dict(dataset_meta=dict(
                classes=classes))), 10, 'c.pth')
