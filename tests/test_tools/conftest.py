"""Fixtures of the end-to-end tool tests (helpers in tool_utils.py).

``tiny_run`` is the one trained work directory that the tool tests share:
tests that only read it take it as is, tests that change it take a copy
(``tiny_run_copy``). ``digits_trainings`` start with the session and run
beside the other tests (background.py); the tests that take them run last.
"""
import os.path as osp
import shutil
import tempfile
from collections import namedtuple

import numpy as np
import pytest
import torch
from background import BackgroundRuns
from tool_utils import (DIGITS_CASES, DIGITS_SEEDS, REPO, digits_run_name,
                        images, output, run_tool, tiny_config, tool_command)

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


#: The digits trainings of the session, and the folder they write to.
DIGITS_TRAININGS = pytest.StashKey()
#: The thread count before the trainings started, and the environment's
#: change (undone at the end).
THREADS = pytest.StashKey()


def _takes_digits_trainings(item) -> bool:
    return 'digits_trainings' in getattr(item, 'fixturenames', ())


def pytest_collection_modifyitems(config, items):
    """The tests that wait for ``digits_trainings`` go last: by then the
    trainings have had the whole session to run."""
    waiting = [item for item in items if _takes_digits_trainings(item)]
    items[:] = [item for item in items
                if not _takes_digits_trainings(item)] + waiting


def pytest_collection_finish(session):
    """Start ``digits_trainings`` if a selected test takes them."""
    if session.config.option.collectonly or not any(
            _takes_digits_trainings(item) for item in session.items):
        return
    root = tempfile.mkdtemp(prefix='digits_trainings_')
    runs = {}
    for scheme, exact in DIGITS_CASES:
        config = osp.join(REPO, 'configs', 'revode', f'{scheme}_digits.py')
        # exact mode (fixed-point pairs): the backbone's exact=True
        options = ['model.backbone.exact=True'] if exact else []
        for seed in DIGITS_SEEDS:
            name = digits_run_name(scheme, exact, seed)
            command, env = tool_command(
                'train.py', config, '--work-dir', osp.join(root, name),
                '--cfg-options', f'randomness.seed={seed}', *options)
            runs[scheme, exact, seed] = (command, env,
                                         osp.join(root, f'{name}.log'))
    session.config.stash[DIGITS_TRAININGS] = (BackgroundRuns(runs), root)
    # One core for the tests, one for the trainings: tests with two
    # threads would wait on the thread a training displaced (in this
    # process and in the tools it starts).
    environ = pytest.MonkeyPatch()
    environ.setenv('OMP_NUM_THREADS', '1')
    environ.setenv('MKL_NUM_THREADS', '1')
    session.config.stash[THREADS] = (torch.get_num_threads(), environ)
    torch.set_num_threads(1)


def pytest_sessionfinish(session):
    started = session.config.stash.get(DIGITS_TRAININGS, None)
    if started is not None:
        runs, root = started
        runs.stop()
        shutil.rmtree(root, ignore_errors=True)
        threads, environ = session.config.stash[THREADS]
        torch.set_num_threads(threads)
        environ.undo()


@pytest.fixture(scope='session')
def digits_trainings(request):
    """``(runs, root)``: the ``BackgroundRuns`` of
    ``configs/revode/{scheme}_digits.py`` through tools/train.py for every
    ``(scheme, exact)`` of ``DIGITS_CASES`` and seed of ``DIGITS_SEEDS``
    (keys ``(scheme, exact, seed)``), each in
    ``root/{scheme}[_exact]_seed{seed}``; started with the session."""
    return request.config.stash[DIGITS_TRAININGS]
