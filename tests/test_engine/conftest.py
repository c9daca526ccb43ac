"""Fixtures of the engine tests."""
import numpy as np
import pytest

from mmrevode.datasets import write_cifar10


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    """A generated CIFAR-10 folder: 20 training and 10 test images."""
    root = str(tmp_path_factory.mktemp('cifar'))
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8)
    write_cifar10(root, images, np.arange(20) % 10, images[:10],
                  np.arange(10))
    return root
