"""Fixtures of the end-to-end tool tests (helpers in tool_utils.py).

``tiny_run`` is the one trained work directory that the tool tests share:
tests that only read it take it as is, tests that change it take a copy
(``tiny_run_copy``).
"""
import shutil
from collections import namedtuple

import numpy as np
import pytest
import torch
from tool_utils import images, output, run_tool, tiny_config

from mmrevode.datasets import write_cifar10
from mmrevode.engine import trust_checkpoints

#: A trained work directory: the config, the directory, what train.py
#: printed (stdout and stderr).
TinyRun = namedtuple('TinyRun', 'config work_dir log')


@pytest.fixture(autouse=True)
def process_settings_restored():
    """Undo what a tool's ``main`` run in this process leaves set: the
    deterministic algorithms of ``randomness``, the thread count and the
    process-wide ``--trust-checkpoint``."""
    deterministic = torch.are_deterministic_algorithms_enabled()
    threads = torch.get_num_threads()
    yield
    torch.use_deterministic_algorithms(deterministic)
    torch.set_num_threads(threads)
    trust_checkpoints(False)


@pytest.fixture(scope='session')
def cifar_root(tmp_path_factory):
    """A generated CIFAR-10 folder: 40 training and 20 test images."""
    root = str(tmp_path_factory.mktemp('cifar10'))
    rng = np.random.default_rng(0)
    write_cifar10(root, images(rng, 40, 32), np.arange(40) % 10,
                  images(rng, 20, 32), np.arange(20) % 10)
    return root


@pytest.fixture(scope='session')
def tiny_run(tmp_path_factory, cifar_root):
    """Two epochs of a tiny Hamiltonian network (``tiny_config``: seed 0,
    deterministic) on ``cifar_root`` through tools/train.py, in a process
    of its own. Read only: take ``tiny_run_copy`` to change it."""
    root = tmp_path_factory.mktemp('tiny_run')
    config = tiny_config(root / 'tiny.py', 'hamiltonian_cifar10.py',
                         cifar_root)
    work_dir = root / 'work'
    result = run_tool('train.py', config, '--work-dir', work_dir)
    assert result.returncode == 0, output(result)
    return TinyRun(config, work_dir, result.stdout + result.stderr)


@pytest.fixture
def tiny_run_copy(tiny_run, tmp_path):
    """A copy of ``tiny_run``'s work directory (``tmp_path / 'work'``), to
    change."""
    work_dir = tmp_path / 'work'
    shutil.copytree(tiny_run.work_dir, work_dir)
    return TinyRun(tiny_run.config, work_dir, tiny_run.log)


@pytest.fixture(scope='session')
def tiny_cifar_run(tiny_run):
    """``(config, checkpoint)`` of ``tiny_run``: its last epoch."""
    return tiny_run.config, tiny_run.work_dir / 'epoch_2.pth'


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
