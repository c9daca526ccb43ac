"""A tiny classifier trained by tools/train.py, shared by the tool tests."""
import numpy as np
import pytest

from mmrevode.datasets import write_cifar10


@pytest.fixture(scope='session')
def tiny_cifar_run(tmp_path_factory):
    """One epoch of a tiny Hamiltonian network on generated CIFAR-10 data,
    through tools/train.py. Returns ``(config, checkpoint)``."""
    from test_train_test import _output, run_tool, tiny_config
    root = tmp_path_factory.mktemp('tiny_cifar_run')
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    write_cifar10(
        str(root / 'data'), images, np.arange(40) % 10, images[:20],
        np.arange(20) % 10)
    config = tiny_config(
        root / 'tiny.py',
        'hamiltonian_cifar10.py',
        str(root / 'data'),
        extra='train_cfg = dict(max_epochs=1)')
    result = run_tool('train.py', config, '--work-dir', root / 'work')
    assert result.returncode == 0, _output(result)
    return config, root / 'work' / 'epoch_1.pth'
