"""The tools fail loudly and safely at the edges, through the real scripts.

Crafted checkpoints and data files run no code; checkpoints that do not fit
the model, diverged runs, a busy or moved work directory, a missing config
and unknown ``--cfg-options`` keys end with one message and exit status 1.
"""
import os
import os.path as osp
import pickle
import shutil
import subprocess
import sys
import time

import pytest
import torch
from tool_utils import (REPO, TINY_ARCH, WritesFile, output, run_tool,
                        state_dict, tiny_config)


@pytest.fixture(scope='module')
def trained(tmp_path_factory, cifar_root):
    """A config and the work dir of one epoch of training on it."""
    tmp_path = tmp_path_factory.mktemp('trained')
    config = tiny_config(tmp_path / 'tiny.py', 'hamiltonian_cifar10.py',
                         cifar_root, extra='train_cfg = dict(max_epochs=1)')
    work_dir = tmp_path / 'work'
    result = run_tool('train.py', config, '--work-dir', work_dir)
    assert result.returncode == 0, output(result)
    return config, work_dir


def crafted_checkpoint(path, marker, real=None):
    """A checkpoint whose unpickling would create ``marker``."""
    checkpoint = torch.load(real, weights_only=False) if real else dict(
        meta=dict(epoch=1, iter=4))
    checkpoint['meta']['note'] = WritesFile(marker)
    torch.save(checkpoint, path)
    return str(path)


def assert_one_line_error(result, *phrases):
    assert result.returncode == 1, output(result)
    assert 'Traceback' not in result.stderr, output(result)
    for phrase in phrases:
        assert phrase in result.stderr, output(result)


# -- checkpoints and data run no code ----------------------------------------
@pytest.mark.slow
def test_crafted_checkpoint_runs_no_code(tmp_path, trained):
    config, work_dir = trained
    marker = tmp_path / 'created_by_the_checkpoint'
    crafted = crafted_checkpoint(tmp_path / 'crafted.pth', marker,
                                 real=work_dir / 'epoch_1.pth')
    refused = ('Error: The checkpoint', 'io.open', '--trust-checkpoint')
    pretrained = tmp_path / 'pretrained.py'
    pretrained.write_text(
        f'_base_ = {config!r}\n'
        "model = dict(backbone=dict(init_cfg=dict(type='Pretrained', "
        f"checkpoint={crafted!r}, prefix='backbone.')))\n")
    runs = {
        'test.py': ['test.py', config, crafted],
        '--resume': ['train.py', config, '--resume', crafted],
        'load_from': ['train.py', config, '--cfg-options',
                      f'load_from={crafted}'],
        'Pretrained': ['train.py', pretrained],
    }
    for name, (tool, *args) in runs.items():
        result = run_tool(tool, *args, '--work-dir', tmp_path / name)
        assert_one_line_error(result, *refused)
        assert not marker.exists(), name

    # the documented opt-in for a file one trusts
    result = run_tool('test.py', config, crafted, '--work-dir',
                      tmp_path / 'trusted', '--trust-checkpoint')
    assert result.returncode == 0, output(result)
    assert marker.exists()
    assert 'weights_only=False' in result.stdout + result.stderr


def spliced_attack(path, real, kind, name, marker):
    """The real checkpoint ``real`` with one attack of the corpus
    (tests/test_fileio/corpus.py) stored under an extra key."""
    sys.path.insert(0, osp.join(REPO, 'tests', 'test_fileio'))
    from corpus import archive_members, pickle_attacks, splice, write_archive
    members = archive_members(real)
    body = pickle_attacks(marker)[kind][name]
    return write_archive(path, {**members,
                                'data.pkl': splice(members['data.pkl'],
                                                   body)})


@pytest.mark.slow
@pytest.mark.parametrize('attack', [
    ('state poisoning',
     'the HistoryBuffer-getattr-_rebuild_from_type_v2 chain'),
    ('numpy', 'dtype with object fields (the crash gadget)'),
])
def test_gadgets_on_every_load_path(tmp_path, trained, attack):
    """The chain that ran code through allowlisted names, and the NumPy
    dtype that crashed, each spliced into a real checkpoint of train.py,
    on every path that loads a checkpoint: no code, no crash, one line."""
    config, work_dir = trained
    marker = tmp_path / 'created_by_the_checkpoint'
    crafted = spliced_attack(tmp_path / 'crafted.pth',
                             work_dir / 'epoch_1.pth', *attack, marker)
    moved = tmp_path / 'moved'
    moved.mkdir()
    shutil.copy(crafted, moved / 'epoch_1.pth')
    (moved / 'last_checkpoint').write_text('epoch_1.pth')
    pretrained = tmp_path / 'pretrained.py'
    pretrained.write_text(
        f'_base_ = {config!r}\n'
        "model = dict(backbone=dict(init_cfg=dict(type='Pretrained', "
        f"checkpoint={crafted!r}, prefix='backbone.')))\n")
    image = tmp_path / 'image.png'
    import mmcv
    import numpy as np
    mmcv.imwrite(np.zeros((32, 32, 3), np.uint8), str(image))
    runs = {
        'test.py': ['tools/test.py', config, crafted],
        '--resume PATH': ['tools/train.py', config, '--resume', crafted],
        'last_checkpoint': ['tools/train.py', config, '--resume',
                            '--work-dir', moved],
        'load_from': ['tools/train.py', config, '--cfg-options',
                      f'load_from={crafted}'],
        'Pretrained': ['tools/train.py', pretrained],
        'image_demo.py': ['demo/image_demo.py', image, config,
                          '--checkpoint', crafted],
        'pytorch2onnx.py': ['tools/deployment/pytorch2onnx.py', config,
                            crafted, '--output-file', tmp_path / 'm.onnx'],
    }
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=REPO)
    for name, (script, *args) in runs.items():
        if '--work-dir' not in args and script.startswith('tools/t'):
            args += ['--work-dir', tmp_path / name.replace(' ', '_')]
        result = subprocess.run(
            [sys.executable, osp.join(REPO, script)] + [str(a) for a in args],
            env=env, capture_output=True, text=True, timeout=600)
        assert_one_line_error(result, 'Error: The checkpoint', 'refused')
        assert not marker.exists(), name
    # MMEngine's own loader in a program that only imports mmrevode
    result = subprocess.run(
        [sys.executable, '-c',
         'import sys, torch, mmrevode; '
         'from mmengine.runner import load_checkpoint; '
         f'load_checkpoint(torch.nn.Linear(2, 2), {crafted!r})'],
        env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 1 and 'UnsafeCheckpointError' in \
        result.stderr, output(result)
    assert not marker.exists()


@pytest.mark.slow
def test_crafted_data_batch_runs_no_code(tmp_path, cifar_root):
    root = tmp_path / 'cifar'
    shutil.copytree(cifar_root, root)
    batch = root / 'cifar-10-batches-py' / 'data_batch_1'
    marker = tmp_path / 'created_by_the_data'
    with open(batch, 'wb') as f:
        pickle.dump({'data': WritesFile(marker), 'labels': [0]}, f)
    config = tiny_config(tmp_path / 'tiny.py', 'hamiltonian_cifar10.py',
                         str(root))
    result = run_tool('train.py', config, '--work-dir', tmp_path / 'work')
    assert_one_line_error(result, f'Error: {batch} cannot be read',
                          'io.open')
    assert not marker.exists()


@pytest.mark.slow
def test_truncated_data_batch_names_the_file(tmp_path, cifar_root):
    root = tmp_path / 'cifar'
    shutil.copytree(cifar_root, root)
    batch = root / 'cifar-10-batches-py' / 'data_batch_3'
    batch.write_bytes(batch.read_bytes()[:500])
    config = tiny_config(tmp_path / 'tiny.py', 'hamiltonian_cifar10.py',
                         str(root))
    result = run_tool('train.py', config, '--work-dir', tmp_path / 'work')
    assert_one_line_error(result, f'Error: {batch} cannot be read')


# -- no silent wrong evaluation ----------------------------------------------
@pytest.mark.slow
def test_checkpoint_that_does_not_fit_is_refused(tmp_path, trained,
                                                 cifar_root):
    config, work_dir = trained
    # the same backbone (network and weights), another head
    other = tiny_config(
        tmp_path / 'other.py', 'hamiltonian_cifar10.py', cifar_root,
        extra=f"model = dict(backbone=dict(arch={TINY_ARCH}), "
        "head=dict(in_channels=32, num_classes=12))")
    checkpoint = work_dir / 'epoch_1.pth'
    result = run_tool('test.py', other, checkpoint, '--work-dir',
                      tmp_path / 'test')
    assert_one_line_error(result, f'The checkpoint {checkpoint} does not fit',
                          other, 'different shapes', '--partial-load')
    assert 'accuracy/top1: ' not in result.stdout

    # on purpose: loads what fits
    result = run_tool('test.py', other, checkpoint, '--work-dir',
                      tmp_path / 'test', '--partial-load')
    assert result.returncode == 0, output(result)
    assert 'accuracy/top1: ' in result.stdout

    # no weights at all, through test.py and load_from
    empty = tmp_path / 'empty.pth'
    torch.save(dict(meta=dict(), state_dict={}), empty)
    result = run_tool('test.py', config, empty, '--work-dir',
                      tmp_path / 'test')
    assert_one_line_error(result, 'it holds no weights')
    result = run_tool('train.py', config, '--work-dir', tmp_path / 'train',
                      '--cfg-options', f'load_from={empty}')
    assert_one_line_error(result, 'it holds no weights')


# -- divergence stops the run ------------------------------------------------
@pytest.mark.slow
def test_divergence_stops_with_the_last_finite_checkpoint(tmp_path,
                                                          cifar_root):
    """A learning rate that diverges in the third epoch: the run stops
    there, and every checkpoint left holds finite weights."""
    config = tiny_config(
        tmp_path / 'tiny.py', 'hamiltonian_cifar10.py', cifar_root,
        extra='train_cfg = dict(max_epochs=6)\n'
        'default_hooks = dict(checkpoint=dict(max_keep_ckpts=1))\n'
        'param_scheduler = dict(_delete_=True, type="MultiStepLR", '
        'by_epoch=True, milestones=[2], gamma=1e12)')
    work_dir = tmp_path / 'work'
    result = run_tool('train.py', config, '--work-dir', work_dir)
    assert_one_line_error(result, 'Error: Stopped at iteration',
                          '(epoch 3)', 'loss = nan',
                          f'The newest checkpoint (finite weights) is '
                          f'{work_dir / "epoch_2.pth"}')
    checkpoints = sorted(f for f in os.listdir(work_dir)
                         if f.endswith('.pth'))
    assert 'epoch_2.pth' in checkpoints and 'epoch_3.pth' not in checkpoints
    for name in checkpoints:
        for key, value in state_dict(work_dir / name).items():
            if value.is_floating_point():
                assert torch.isfinite(value).all(), (name, key)


# -- one run per work dir, stale files, a moved work dir ---------------------
@pytest.mark.slow
def test_second_run_on_a_busy_work_dir_refuses(tmp_path, cifar_root):
    """The second run refuses at once, naming the first, which goes on."""
    config = tiny_config(tmp_path / 'tiny.py', 'hamiltonian_cifar10.py',
                         cifar_root, extra='train_cfg = dict(max_epochs=500)')
    work_dir = tmp_path / 'work'
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=REPO)
    first = subprocess.Popen(
        [sys.executable, osp.join(REPO, 'tools', 'train.py'), config,
         '--work-dir', str(work_dir)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while not osp.isfile(work_dir / 'epoch_1.pth'):
            assert first.poll() is None and time.time() < deadline
            time.sleep(0.2)
        second = run_tool('train.py', config, '--work-dir', work_dir)
        assert_one_line_error(second, f'The work directory {work_dir} is in '
                              f'use by another run (process {first.pid} on')
        # the first run is still training: it saves later epochs
        pointer = work_dir / 'last_checkpoint'
        saved = pointer.read_text()
        while pointer.read_text() == saved:
            assert first.poll() is None and time.time() < deadline
            time.sleep(0.2)
    finally:
        first.terminate()
        first.wait(60)


@pytest.mark.slow
def test_stale_temporary_files_are_removed(tmp_path, trained):
    config, _ = trained
    work_dir = tmp_path / 'work'
    work_dir.mkdir()
    dead = subprocess.Popen([sys.executable, '-c', 'pass'])
    dead.wait()
    stale = work_dir / f'.epoch_1.pth.{dead.pid}.tmp'
    stale.write_bytes(b'half a checkpoint')
    result = run_tool('train.py', config, '--work-dir', work_dir)
    assert result.returncode == 0, output(result)
    assert not stale.exists()


@pytest.mark.slow
def test_resume_removes_checkpoints_a_kill_left(tmp_path, cifar_root):
    """A kill between writing epoch_2.pth and deleting epoch_1.pth (with
    max_keep_ckpts=1), and one between writing a new best and deleting the
    previous: the next start removes both, and says so."""
    config = tiny_config(
        tmp_path / 'tiny.py', 'hamiltonian_cifar10.py', cifar_root,
        extra='default_hooks = dict(checkpoint=dict(max_keep_ckpts=1))')
    work_dir = tmp_path / 'work'
    result = run_tool('train.py', config, '--work-dir', work_dir)
    assert result.returncode == 0, output(result)
    (best, ) = work_dir.glob('best_accuracy_top1_epoch_*.pth')
    superseded = work_dir / ('best_accuracy_top1_epoch_1.pth'
                             if best.name.endswith('_2.pth') else
                             'best_accuracy_top1_epoch_2.pth')
    for left in (work_dir / 'epoch_1.pth', superseded):
        shutil.copy(work_dir / 'epoch_2.pth', left)
    result = run_tool('train.py', config, '--work-dir', work_dir, '--resume',
                      '--cfg-options', 'train_cfg.max_epochs=3')
    assert result.returncode == 0, output(result)
    removed = sorted([superseded.name, 'epoch_1.pth'])
    assert (f'Removed 2 checkpoint(s) that a stopped run left outside the '
            f'rotation (max_keep_ckpts=1, best by accuracy/top1): '
            f'{", ".join(removed)}.') in result.stdout, output(result)
    names = sorted(f for f in os.listdir(work_dir) if f.endswith('.pth'))
    assert [n for n in names if n.startswith('epoch_')] == ['epoch_3.pth']
    assert len([n for n in names if n.startswith('best_')]) == 1


@pytest.mark.slow
def test_moved_work_dir_resumes_from_its_own_files(tmp_path, trained):
    config, work_dir = trained
    old = tmp_path / 'old'
    shutil.copytree(work_dir, old)
    # a pointer written with an absolute path, as older versions did
    (old / 'last_checkpoint').write_text(str(old / 'epoch_1.pth'))
    moved = tmp_path / 'moved'
    shutil.copytree(old, moved)
    (old / 'epoch_1.pth').write_bytes(b'not the file to resume from')
    result = run_tool('train.py', config, '--work-dir', moved, '--resume',
                      '--cfg-options', 'train_cfg.max_epochs=2')
    assert result.returncode == 0, output(result)
    assert 'resumed epoch: 1' in result.stdout + result.stderr
    assert (moved / 'last_checkpoint').read_text() == 'epoch_2.pth'
    assert osp.isfile(moved / 'epoch_2.pth')


# -- one-line errors for the command line ------------------------------------
def test_missing_config_is_one_line(tmp_path):
    missing = osp.join(REPO, 'configs', 'revode', 'hamiltonain_cifar10.py')
    result = run_tool('train.py', missing, '--work-dir', tmp_path)
    assert_one_line_error(result, f'The config {missing} does not exist',
                          'hamiltonian_cifar10.py')
    result = run_tool('test.py', missing, 'x.pth')
    assert_one_line_error(result, 'does not exist')


def test_unknown_cfg_options_key_is_refused(tmp_path, cifar_root):
    config = tiny_config(tmp_path / 'tiny.py', 'hamiltonian_cifar10.py',
                         cifar_root)
    for key, hint in (('train_cfgs.max_epochs=1', 'train_cfg'),
                      ('model.backbon.h=0.2', 'backbone'),
                      ('optim_wraper.optimizer.lr=1', 'optim_wrapper'),
                      ('model.backbone.hh=0.2', None)):
        result = run_tool('train.py', config, '--work-dir', tmp_path,
                          '--cfg-options', key)
        assert_one_line_error(result, f'--cfg-options {key.split("=")[0]}',
                              f'+{key.split("=")[0]}=')
        if hint:
            assert f'Did you mean {hint}' in result.stderr


def test_known_keys_and_plus_keys_are_accepted(tmp_path, cifar_root):
    """Arguments of the built class, Runner keys and +new keys pass the
    check (the run then fails on purpose at the missing checkpoint)."""
    config = tiny_config(tmp_path / 'tiny.py', 'hamiltonian_cifar10.py',
                         cifar_root)
    result = run_tool(
        'train.py', config, '--work-dir', tmp_path, '--cfg-options',
        'model.backbone.h=0.2', 'train_dataloader.drop_last=True',
        '+my_note=1', f'load_from={tmp_path / "none.pth"}')
    assert_one_line_error(result, 'does not exist')
    assert '--cfg-options' not in result.stderr


@pytest.mark.slow
def test_config_mistakes_are_one_line(tmp_path, cifar_root):
    """A value a class refuses, a config that does not parse, a missing
    _base_: exit 1, one line, no traceback."""
    config = tiny_config(tmp_path / 'tiny.py', 'hamiltonian_cifar10.py',
                         cifar_root)
    syntax = tmp_path / 'syntax.py'
    syntax.write_text('model = dict(\n')
    missing = tmp_path / 'missing_base.py'
    missing.write_text("_base_ = 'nothere.py'\n")
    for args, phrase in (
            ([config, '--cfg-options', 'model.backbone.h=abc'],
             "h (the step size) must be a positive number, got 'abc'"),
            ([config, '--cfg-options', 'model.backbone.mode=reverse'],
             'mode must be one of'),
            ([syntax], 'SyntaxError'), ([missing], 'nothere.py')):
        result = run_tool('train.py', *args, '--work-dir', tmp_path / 'w')
        assert_one_line_error(result, phrase, 'MMREVODE_DEBUG=1')
