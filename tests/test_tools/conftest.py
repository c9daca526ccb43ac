"""Fixtures of the end-to-end tool tests (helpers in tool_utils.py)."""
import numpy as np
import pytest
from tool_utils import images

from mmrevode.datasets import write_cifar10


@pytest.fixture(scope='module')
def cifar_root(tmp_path_factory):
    """A generated CIFAR-10 folder: 40 training and 20 test images."""
    root = str(tmp_path_factory.mktemp('cifar10'))
    rng = np.random.default_rng(0)
    write_cifar10(root, images(rng, 40, 32), np.arange(40) % 10,
                  images(rng, 20, 32), np.arange(20) % 10)
    return root
