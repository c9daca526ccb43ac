"""tools/train.py and tools/test.py end to end, on data in the real formats.

The tools run with tiny models (one block per unit) and ``num_workers=0``
(two workers where resumption is checked): in subprocesses where a process
of their own matters (the exit status and output of an error, resumption in
a new process, compilation), else through their ``main(argv)`` in this
process. Subprocesses get one thread each (``OMP_NUM_THREADS=1``): with
batches this small a second thread gains nothing, and on a busy machine
oversubscribed threads slow torch down many times.
"""
import json
import os
import os.path as osp
import pickle

import numpy as np
import pytest
import torch
from tool_utils import (REPO, assert_main_error, images, output, run_main,
                        run_tool, start_tool, state_dict, tiny_config)

from mmrevode.datasets import write_stl10


@pytest.fixture(scope='module')
def stl_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('stl10'))
    rng = np.random.default_rng(1)
    write_stl10(root, images(rng, 20, 96), np.arange(20) % 10,
                images(rng, 10, 96), np.arange(10))
    return root


# -- clear errors, no traceback ---------------------------------------------
def test_missing_data_is_one_clear_message(tmp_path):
    empty = tmp_path / 'nowhere'
    result = run_tool(
        'train.py',
        osp.join(REPO, 'configs', 'revode', 'hamiltonian_cifar10.py'),
        '--work-dir', tmp_path / 'work', '--cfg-options',
        f'train_dataloader.dataset.data_root={empty}',
        'train_dataloader.dataset.download=False',
        'train_dataloader.num_workers=0')
    assert result.returncode == 1, output(result)
    assert 'Traceback' not in result.stderr, output(result)
    assert 'Error: CIFAR-10 was not found' in result.stderr
    assert osp.join(str(empty), 'cifar-10-batches-py') in result.stderr
    assert 'data_batch_1' in result.stderr
    assert 'https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz' \
        in result.stderr


def test_unreadable_checkpoint_is_one_clear_message(tmp_path, cifar_root,
                                                    capsys):
    config = tiny_config(tmp_path / 'tiny.py', 'hamiltonian_cifar10.py',
                         cifar_root)
    broken = tmp_path / 'epoch_1.pth'
    broken.write_bytes(b'PK\x03\x04' + b'\x00' * 100)
    result = run_tool('test.py', config, broken, '--work-dir',
                      tmp_path / 'work')
    assert result.returncode == 1, output(result)
    assert 'Traceback' not in result.stderr, output(result)
    assert f'Error: The checkpoint {broken}' in result.stderr
    assert 'truncated, corrupt' in result.stderr
    status = run_main('test.py', config, tmp_path / 'missing.pth',
                      '--work-dir', tmp_path / 'work')
    assert_main_error(status, capsys.readouterr().err, 'does not exist')


# -- train, then test the checkpoint ------------------------------------------
def top1_of_checkpoint(config, checkpoint, data_root):
    """Top-1 accuracy (%) of ``checkpoint`` on the test batch of
    ``data_root``, computed here: the batch file read directly, the model
    run in PyTorch."""
    from mmpretrain.apis import get_model
    with open(osp.join(data_root, 'cifar-10-batches-py', 'test_batch'),
              'rb') as f:
        batch = pickle.load(f)  # written by the cifar_root fixture
    inputs = torch.from_numpy(batch['data'].reshape(-1, 3, 32, 32))
    labels = torch.tensor(batch['labels'])
    model = get_model(str(config), pretrained=str(checkpoint)).eval()
    with torch.no_grad():
        data = model.data_preprocessor(dict(inputs=list(inputs)), False)
        predicted = model(data['inputs'], mode='tensor').argmax(dim=1)
    return 100.0 * (predicted == labels).float().mean().item()


@pytest.mark.slow
def test_train_and_test_cifar10(tiny_run, cifar_root, tmp_path, capsys):
    config, work_dir, _ = tiny_run
    names = sorted(os.listdir(work_dir))
    assert 'epoch_2.pth' in names
    # the last 3 epochs are kept, and the best by top-1
    assert 'epoch_1.pth' in names
    assert any(n.startswith('best_accuracy_top1_epoch_') for n in names)
    # the absolute path, as MMEngine writes it (MMEngine's own resume
    # reads it; a moved work directory is resolved by the launcher)
    with open(work_dir / 'last_checkpoint') as f:
        assert f.read() == str(work_dir / 'epoch_2.pth')

    metrics_file = tmp_path / 'metrics.json'
    assert run_main('test.py', config, work_dir / 'epoch_2.pth',
                    '--work-dir', tmp_path / 'test', '--out', metrics_file,
                    '--out-item', 'metrics') == 0
    printed = [line for line in capsys.readouterr().out.splitlines()
               if line.startswith('accuracy/top1: ')]
    with open(metrics_file) as f:
        metrics = json.load(f)
    expected = top1_of_checkpoint(config, work_dir / 'epoch_2.pth',
                                  cifar_root)
    assert metrics['accuracy/top1'] == pytest.approx(expected, abs=1e-4)
    assert printed == [f'accuracy/top1: {metrics["accuracy/top1"]:.4f}']

    predictions = tmp_path / 'pred.pkl'
    assert run_main('test.py', config, work_dir / 'epoch_2.pth',
                    '--work-dir', tmp_path / 'test', '--out',
                    predictions) == 0
    assert osp.getsize(predictions) > 0


@pytest.mark.slow
def test_train_and_test_stl10(tmp_path, stl_root, capsys):
    config = tiny_config(tmp_path / 'tiny.py', 'hamiltonian_stl10.py',
                         stl_root, batch_size=5)
    work_dir = tmp_path / 'work'
    assert run_main('train.py', config, '--work-dir', work_dir) == 0
    assert osp.isfile(work_dir / 'epoch_2.pth')
    capsys.readouterr()
    assert run_main('test.py', config, work_dir / 'epoch_2.pth',
                    '--work-dir', tmp_path / 'test') == 0
    assert 'accuracy/top1: ' in capsys.readouterr().out


@pytest.mark.slow
def test_fewer_data_config_trains(tmp_path, cifar_root, capsys):
    """The subset wrapper and the iteration-based schedule, end to end."""
    extra = """
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=4,
                 val_interval=2)
param_scheduler = dict(milestones=[2, 3])
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=2))
"""
    config = tiny_config(
        tmp_path / 'tiny.py', 'fewer_data/hamiltonian_cifar10_20pct.py',
        cifar_root, extra=extra, wrapped=True)
    work_dir = tmp_path / 'work'
    assert run_main('train.py', config, '--work-dir', work_dir) == 0
    assert osp.isfile(work_dir / 'iter_4.pth')
    out = capsys.readouterr().out
    assert 'Iter(train) [4/4]' in out
    assert 'Iter(val)' in out


@pytest.mark.slow
def test_resume_gives_identical_weights(tmp_path, cifar_root):
    """1 epoch, stop, --resume, 1 more epoch == 2 epochs straight, bit for
    bit, with the data-loader settings of the configs as shipped: two
    workers, a random seed drawn at the start of the run."""
    config = tiny_config(
        tmp_path / 'tiny.py', 'hamiltonian_cifar10.py', cifar_root,
        num_workers=2, extra='randomness = dict(seed=None)')
    work_dir = tmp_path / 'resumed'
    result = run_tool('train.py', config, '--work-dir', work_dir,
                      '--cfg-options', 'train_cfg.max_epochs=1')
    assert result.returncode == 0, output(result)
    assert not osp.exists(work_dir / 'epoch_2.pth')
    seed = torch.load(work_dir / 'epoch_1.pth', weights_only=False)[
        'meta']['seed']
    # three runs from here on, side by side: the resume, two epochs
    # straight with the seed the first run drew, and a resume from an
    # explicit path
    runs = {
        'resumed':
        start_tool('train.py', config, '--work-dir', work_dir, '--resume',
                   log=tmp_path / 'resumed.log'),
        'straight':
        start_tool('train.py', config, '--work-dir', tmp_path / 'straight',
                   '--cfg-options', f'randomness.seed={seed}',
                   log=tmp_path / 'straight.log'),
        'again':
        start_tool('train.py', config, '--work-dir', tmp_path / 'again',
                   '--resume', work_dir / 'epoch_1.pth',
                   log=tmp_path / 'again.log'),
    }
    logs = {}
    for name, run in runs.items():
        assert run.wait(timeout=600) == 0, \
            (tmp_path / f'{name}.log').read_text()[-6000:]
        logs[name] = (tmp_path / f'{name}.log').read_text()
    assert 'resumed epoch: 1' in logs['resumed']
    straight = state_dict(tmp_path / 'straight' / 'epoch_2.pth')
    resumed = state_dict(work_dir / 'epoch_2.pth')
    assert straight.keys() == resumed.keys()
    differ = [k for k in straight if not torch.equal(straight[k], resumed[k])]
    assert not differ, f'{len(differ)} of {len(straight)} tensors differ'

    # resuming from an explicit path works the same way
    assert 'resumed epoch: 1' in logs['again']
    again = state_dict(tmp_path / 'again' / 'epoch_2.pth')
    for key in straight:
        assert torch.equal(straight[key], again[key]), key


@pytest.mark.slow
def test_compile_option_trains(tmp_path, cifar_root):
    """``--cfg-options compile=True`` compiles the model (not the optimizer
    step, which MMEngine would and torch 2.14 cannot) and trains."""
    config = tiny_config(tmp_path / 'tiny.py', 'hamiltonian_cifar10.py',
                         cifar_root, extra='train_cfg = dict(max_epochs=1)')
    result = run_tool('train.py', config, '--work-dir', tmp_path / 'work',
                      '--cfg-options', 'compile=True')
    assert result.returncode == 0, output(result)
    assert 'ModelCompileHook' in result.stdout
    assert osp.isfile(tmp_path / 'work' / 'epoch_1.pth')
