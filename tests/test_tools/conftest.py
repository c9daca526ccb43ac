"""Fixtures of the end-to-end tool tests (helpers in tool_utils.py)."""
import numpy as np
import pytest
from tool_utils import images, output, run_tool, tiny_config

from mmrevode.datasets import write_cifar10


@pytest.fixture(scope='module')
def cifar_root(tmp_path_factory):
    """A generated CIFAR-10 folder: 40 training and 20 test images."""
    root = str(tmp_path_factory.mktemp('cifar10'))
    rng = np.random.default_rng(0)
    write_cifar10(root, images(rng, 40, 32), np.arange(40) % 10,
                  images(rng, 20, 32), np.arange(20) % 10)
    return root


@pytest.fixture(scope='session')
def tiny_cifar_run(tmp_path_factory):
    """One epoch of a tiny Hamiltonian network on generated CIFAR-10 data,
    through tools/train.py. Returns ``(config, checkpoint)``."""
    root = tmp_path_factory.mktemp('tiny_cifar_run')
    rng = np.random.default_rng(0)
    data = images(rng, 40, 32)
    write_cifar10(
        str(root / 'data'), data, np.arange(40) % 10, data[:20],
        np.arange(20) % 10)
    config = tiny_config(
        root / 'tiny.py',
        'hamiltonian_cifar10.py',
        str(root / 'data'),
        extra='train_cfg = dict(max_epochs=1)')
    result = run_tool('train.py', config, '--work-dir', root / 'work')
    assert result.returncode == 0, output(result)
    return config, root / 'work' / 'epoch_1.pth'


@pytest.fixture(scope='session')
def digits_run(tmp_path_factory):
    """One epoch of ``configs/revode/hamiltonian_digits.py`` through
    tools/train.py. Returns ``(config, checkpoint, train_log)``, the log
    being everything the run printed."""
    pytest.importorskip('sklearn')
    import os.path as osp

    from tool_utils import REPO
    root = tmp_path_factory.mktemp('digits_run')
    config = osp.join(REPO, 'configs', 'revode', 'hamiltonian_digits.py')
    result = run_tool('train.py', config, '--work-dir', root / 'work',
                      '--cfg-options', 'train_cfg.max_epochs=1')
    assert result.returncode == 0, output(result)
    return config, root / 'work' / 'epoch_1.pth', result.stdout + \
        result.stderr
