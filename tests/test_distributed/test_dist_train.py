"""``tools/dist_train.sh CONFIG 2`` on CPU: two processes (torchrun, gloo),
one short epoch on generated CIFAR-10 data, a tiny Hamiltonian network.

- With plain BN, both ranks end with identical parameters.
- With synchronised BN (on CPU the ``GlooSyncBN`` stand-in of
  ``dist_plugins``, since torch's ``SyncBatchNorm`` needs a GPU) both ranks
  also end with identical running statistics, and the weights equal those
  of one process (``tools/train.py``) trained with plain BN on the same
  global batches: the distributed sampler gives rank ``r`` the positions
  ``r, r + 2, ...`` of the same shuffled order, so each global batch holds
  the same images (augmentation is switched off, it draws per process).
"""
import os
import os.path as osp
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
HERE = osp.dirname(osp.abspath(__file__))
NUM_TRAIN = 48
GLOBAL_BATCH = 16

CONFIG = """
_base_ = [{base!r}]
custom_imports = dict(
    imports=['mmrevode', 'dist_plugins'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        arch=dict(_delete_=True, blocks=[1, 1, 1], widths=[8, 16, 32]),
        norm_cfg=dict(type={norm!r})),
    head=dict(in_channels=32))
train_dataloader = dict(
    batch_size={batch_size},
    num_workers=0,
    dataset=dict(
        data_root={data_root!r},
        verify_md5=False,
        pipeline=[dict(type='PackInputs')]))
val_dataloader = dict(
    num_workers=0, dataset=dict(data_root={data_root!r}, verify_md5=False))
test_dataloader = val_dataloader
train_cfg = dict(max_epochs=1)
default_hooks = dict(
    logger=dict(interval=1), checkpoint=dict(save_best=None))
custom_hooks = [dict(type='EpochSeedHook'), dict(type='RankStateHook')]
randomness = dict(seed=0)
"""


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    from mmrevode.datasets.writers import write_cifar10
    root = str(tmp_path_factory.mktemp('cifar10'))
    rng = np.random.default_rng(0)
    write_cifar10(
        root,
        rng.integers(0, 256, (NUM_TRAIN, 32, 32, 3), dtype=np.uint8),
        rng.integers(0, 10, NUM_TRAIN),
        rng.integers(0, 256, (16, 32, 32, 3), dtype=np.uint8),
        rng.integers(0, 10, 16))
    return root


def write_config(tmp_path, data_root, norm, batch_size):
    path = osp.join(tmp_path, f'tiny_{norm}_{batch_size}.py')
    with open(path, 'w') as f:
        f.write(
            CONFIG.format(
                base=osp.join(ROOT, 'configs', 'revode',
                              'hamiltonian_cifar10.py'),
                norm=norm,
                batch_size=batch_size,
                data_root=data_root))
    return path


def run_tool(args, work_dir):
    env = dict(os.environ)
    env.update(
        PATH=osp.dirname(sys.executable) + os.pathsep + env.get('PATH', ''),
        PYTHONPATH=os.pathsep.join(
            [ROOT, HERE] + [p for p in [env.get('PYTHONPATH')] if p]),
        # the CPU path, also on a machine with GPUs
        CUDA_VISIBLE_DEVICES='',
        OMP_NUM_THREADS='1',
        GLOO_SOCKET_IFNAME='lo',
        MASTER_ADDR='127.0.0.1',
        PORT=str(_free_port()))
    proc = subprocess.run(
        args + ['--work-dir', work_dir, '--no-validate'],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=600)
    assert proc.returncode == 0, proc.stdout[-6000:]
    return proc.stdout


def dist_train(config, work_dir):
    log = run_tool(
        ['bash', osp.join('tools', 'dist_train.sh'), config, '2'], work_dir)
    states = [
        torch.load(osp.join(work_dir, f'rank{r}.pth'), weights_only=False)
        for r in range(2)
    ]
    return states, log


def assert_relative_close(a, b, tol, key):
    err = ((a.double() - b.double()).norm() /
           b.double().norm().clamp_min(1e-12)).item()
    assert err < tol, (key, err)


@pytest.mark.slow
def test_dist_train_two_cpu_processes_end_with_identical_weights(
        tmp_path, data_root):
    config = write_config(str(tmp_path), data_root, 'BN', GLOBAL_BATCH // 2)
    (rank0, rank1), log = dist_train(config, str(tmp_path / 'work'))
    assert 'Epoch(train) [1][3/3]' in log
    params = [k for k in rank0 if not k.startswith('data_preprocessor')
              and 'running_' not in k and 'num_batches' not in k]
    assert any('units.0' in k for k in params)
    for key in params:
        assert torch.equal(rank0[key], rank1[key]), key
    # three iterations, one BN update each (not two: the reversible
    # backward recomputes without tracking)
    for key in rank0:
        if key.endswith('num_batches_tracked'):
            assert rank0[key].item() == rank1[key].item() == 3, key
    # the default checkpoint of rank 0 is written too
    assert osp.exists(tmp_path / 'work' / 'epoch_1.pth')


@pytest.mark.slow
def test_dist_train_with_synchronised_bn_equals_one_process(
        tmp_path, data_root):
    sync_config = write_config(
        str(tmp_path), data_root, 'GlooSyncBN', GLOBAL_BATCH // 2)
    (rank0, rank1), _ = dist_train(sync_config, str(tmp_path / 'dist'))
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key

    single_config = write_config(str(tmp_path), data_root, 'BN',
                                 GLOBAL_BATCH)
    single_dir = str(tmp_path / 'single')
    run_tool([sys.executable, osp.join('tools', 'train.py'), single_config],
             single_dir)
    single = torch.load(osp.join(single_dir, 'rank0.pth'), weights_only=False)
    assert single.keys() == rank0.keys()
    for key, value in single.items():
        if key.endswith('num_batches_tracked'):
            assert rank0[key].item() == value.item() == 3, key
        elif value.is_floating_point():
            assert_relative_close(rank0[key], value, 1e-4, key)
