"""The tools fail loudly and safely at the edges, through the real scripts.

Crafted checkpoints and data files run no code; checkpoints that do not fit
the model, diverged runs, a busy or moved work directory, a missing config
and unknown ``--cfg-options`` keys end with one message and exit status 1.

The scripts' ``main(argv)`` run in this process (``run_main``); the exit
status and the absence of a traceback in a process of its own are checked
once per tool (test_train_test.py, test_image_demo.py,
test_pytorch2onnx.py), and here where the check needs a second process.
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
from tool_utils import (REPO, TINY_ARCH, WritesFile, assert_main_error,
                        output, run_main, state_dict, tiny_config)


def crafted_checkpoint(path, marker, real=None):
    """A checkpoint whose unpickling would create ``marker``."""
    checkpoint = torch.load(real, weights_only=False) if real else dict(
        meta=dict(epoch=1, iter=4))
    checkpoint['meta']['note'] = WritesFile(marker)
    torch.save(checkpoint, path)
    return str(path)


def main_error(capsys, tool, *args):
    """``tool``'s ``main`` on ``args`` in this process: exit status 1 and
    one ``Error:`` line; returns ``(stdout, stderr)``."""
    status = run_main(tool, *args)
    out, err = capsys.readouterr()
    assert_main_error(status, err)
    return out, err


# -- checkpoints and data run no code ----------------------------------------
@pytest.mark.slow
def test_crafted_checkpoint_runs_no_code(tmp_path, tiny_run, capsys):
    config, work_dir, _ = tiny_run
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
        _, err = main_error(capsys, tool, *args, '--work-dir',
                            tmp_path / name)
        for phrase in refused:
            assert phrase in err, (name, err)
        assert not marker.exists(), name

    # the documented opt-in for a file one trusts (process-wide: the
    # fixture process_settings_restored turns it off again)
    assert run_main('test.py', config, crafted, '--work-dir',
                    tmp_path / 'trusted', '--trust-checkpoint') == 0
    out, err = capsys.readouterr()
    assert marker.exists()
    assert 'weights_only=False' in out + err


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


#: The chain that ran code through allowlisted names, and the NumPy dtype
#: that crashed (kind and name in tests/test_fileio/corpus.py).
GADGETS = [
    ('state poisoning',
     'the HistoryBuffer-getattr-_rebuild_from_type_v2 chain'),
    ('numpy', 'dtype with object fields (the crash gadget)'),
]


@pytest.mark.slow
@pytest.mark.parametrize('attack', GADGETS)
def test_gadgets_on_every_load_path(tmp_path, tiny_run, attack, capsys):
    """The chain that ran code through allowlisted names, and the NumPy
    dtype that crashed, each spliced into a real checkpoint of train.py,
    on every path that loads a checkpoint: no code, no crash, one line."""
    config, work_dir, _ = tiny_run
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
    for name, (script, *args) in runs.items():
        if '--work-dir' not in args and script.startswith('tools/t'):
            args += ['--work-dir', tmp_path / name.replace(' ', '_')]
        _, err = main_error(capsys, script, *args)
        assert 'Error: The checkpoint' in err and 'refused' in err, (name,
                                                                    err)
        assert not marker.exists(), name


@pytest.mark.slow
def test_gadgets_through_mmengines_loader(tmp_path, tiny_run):
    """MMEngine's own loader, in a program that only imports mmrevode,
    refuses both gadgets of ``test_gadgets_on_every_load_path``."""
    marker = tmp_path / 'created_by_the_checkpoint'
    crafted = [
        spliced_attack(tmp_path / f'crafted{i}.pth',
                       tiny_run.work_dir / 'epoch_1.pth', *attack, marker)
        for i, attack in enumerate(GADGETS)
    ]
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=REPO)
    result = subprocess.run(
        [sys.executable, '-c',
         'import sys, torch, mmrevode\n'
         'from mmengine.runner import load_checkpoint\n'
         f'for path in {crafted!r}:\n'
         '    try:\n'
         '        load_checkpoint(torch.nn.Linear(2, 2), path)\n'
         '    except Exception as e:\n'
         "        print('raised:', path, type(e).__name__)\n"],
        env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, output(result)
    raised = [line for line in result.stdout.splitlines()
              if line.startswith('raised: ')]
    assert raised == [f'raised: {path} UnsafeCheckpointError'
                      for path in crafted], output(result)
    assert not marker.exists()


@pytest.mark.slow
def test_crafted_data_batch_runs_no_code(tmp_path, cifar_root, capsys):
    root = tmp_path / 'cifar'
    shutil.copytree(cifar_root, root)
    batch = root / 'cifar-10-batches-py' / 'data_batch_1'
    marker = tmp_path / 'created_by_the_data'
    with open(batch, 'wb') as f:
        pickle.dump({'data': WritesFile(marker), 'labels': [0]}, f)
    config = tiny_config(tmp_path / 'tiny.py', 'hamiltonian_cifar10.py',
                         str(root))
    _, err = main_error(capsys, 'train.py', config, '--work-dir',
                        tmp_path / 'work')
    assert f'Error: {batch} cannot be read' in err and 'io.open' in err
    assert not marker.exists()


@pytest.mark.slow
def test_truncated_data_batch_names_the_file(tmp_path, cifar_root, capsys):
    root = tmp_path / 'cifar'
    shutil.copytree(cifar_root, root)
    batch = root / 'cifar-10-batches-py' / 'data_batch_3'
    batch.write_bytes(batch.read_bytes()[:500])
    config = tiny_config(tmp_path / 'tiny.py', 'hamiltonian_cifar10.py',
                         str(root))
    _, err = main_error(capsys, 'train.py', config, '--work-dir',
                        tmp_path / 'work')
    assert f'Error: {batch} cannot be read' in err


# -- no silent wrong evaluation ----------------------------------------------
@pytest.mark.slow
def test_checkpoint_that_does_not_fit_is_refused(tmp_path, tiny_run,
                                                 cifar_root, capsys):
    config, work_dir, _ = tiny_run
    # the same backbone (network and weights), another head
    other = tiny_config(
        tmp_path / 'other.py', 'hamiltonian_cifar10.py', cifar_root,
        extra=f"model = dict(backbone=dict(arch={TINY_ARCH}), "
        "head=dict(in_channels=32, num_classes=12))")
    checkpoint = work_dir / 'epoch_1.pth'
    out, err = main_error(capsys, 'test.py', other, checkpoint,
                          '--work-dir', tmp_path / 'test')
    for phrase in (f'The checkpoint {checkpoint} does not fit', other,
                   'different shapes', '--partial-load'):
        assert phrase in err, err
    assert 'accuracy/top1: ' not in out

    # on purpose: loads what fits
    assert run_main('test.py', other, checkpoint, '--work-dir',
                    tmp_path / 'test', '--partial-load') == 0
    assert 'accuracy/top1: ' in capsys.readouterr().out

    # no weights at all, through test.py and load_from
    empty = tmp_path / 'empty.pth'
    torch.save(dict(meta=dict(), state_dict={}), empty)
    _, err = main_error(capsys, 'test.py', config, empty, '--work-dir',
                        tmp_path / 'test')
    assert 'it holds no weights' in err
    _, err = main_error(capsys, 'train.py', config, '--work-dir',
                        tmp_path / 'train', '--cfg-options',
                        f'load_from={empty}')
    assert 'it holds no weights' in err


# -- divergence stops the run ------------------------------------------------
@pytest.mark.slow
def test_divergence_stops_with_the_last_finite_checkpoint(tmp_path,
                                                          cifar_root, capsys):
    """A learning rate that diverges in the third epoch: the run stops
    there, and every checkpoint left holds finite weights."""
    config = tiny_config(
        tmp_path / 'tiny.py', 'hamiltonian_cifar10.py', cifar_root,
        extra='train_cfg = dict(max_epochs=6)\n'
        'default_hooks = dict(checkpoint=dict(max_keep_ckpts=1))\n'
        'param_scheduler = dict(_delete_=True, type="MultiStepLR", '
        'by_epoch=True, milestones=[2], gamma=1e12)')
    work_dir = tmp_path / 'work'
    _, err = main_error(capsys, 'train.py', config, '--work-dir', work_dir)
    for phrase in ('Error: Stopped at iteration', '(epoch 3)', 'loss = nan',
                   'The newest checkpoint (finite weights) is '
                   f'{work_dir / "epoch_2.pth"}'):
        assert phrase in err, err
    checkpoints = sorted(f for f in os.listdir(work_dir)
                         if f.endswith('.pth'))
    assert 'epoch_2.pth' in checkpoints and 'epoch_3.pth' not in checkpoints
    for name in checkpoints:
        for key, value in state_dict(work_dir / name).items():
            if value.is_floating_point():
                assert torch.isfinite(value).all(), (name, key)


# -- one run per work dir, stale files, a moved work dir ---------------------
@pytest.mark.slow
def test_second_run_on_a_busy_work_dir_refuses(tmp_path, cifar_root, capsys):
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
        _, err = main_error(capsys, 'train.py', config, '--work-dir',
                            work_dir)
        assert (f'The work directory {work_dir} is in use by another run '
                f'(process {first.pid} on') in err, err
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
def test_stale_temporary_files_are_removed(tmp_path, tiny_run):
    config = tiny_run.config
    work_dir = tmp_path / 'work'
    work_dir.mkdir()
    dead = subprocess.Popen([sys.executable, '-c', 'pass'])
    dead.wait()
    stale = work_dir / f'.epoch_1.pth.{dead.pid}.tmp'
    stale.write_bytes(b'half a checkpoint')
    assert run_main('train.py', config, '--work-dir', work_dir,
                    '--cfg-options', 'train_cfg.max_epochs=1') == 0
    assert not stale.exists()


@pytest.mark.slow
def test_resume_removes_checkpoints_a_kill_left(tmp_path, cifar_root,
                                                capsys):
    """A kill between writing epoch_2.pth and deleting epoch_1.pth (with
    max_keep_ckpts=1), and one between writing a new best and deleting the
    previous: the next start removes both, and says so."""
    config = tiny_config(
        tmp_path / 'tiny.py', 'hamiltonian_cifar10.py', cifar_root,
        extra='default_hooks = dict(checkpoint=dict(max_keep_ckpts=1))')
    work_dir = tmp_path / 'work'
    assert run_main('train.py', config, '--work-dir', work_dir) == 0
    (best, ) = work_dir.glob('best_accuracy_top1_epoch_*.pth')
    superseded = work_dir / ('best_accuracy_top1_epoch_1.pth'
                             if best.name.endswith('_2.pth') else
                             'best_accuracy_top1_epoch_2.pth')
    for left in (work_dir / 'epoch_1.pth', superseded):
        shutil.copy(work_dir / 'epoch_2.pth', left)
    capsys.readouterr()
    assert run_main('train.py', config, '--work-dir', work_dir, '--resume',
                    '--cfg-options', 'train_cfg.max_epochs=3') == 0
    out, err = capsys.readouterr()
    removed = sorted([superseded.name, 'epoch_1.pth'])
    assert (f'Removed 2 checkpoint(s) that a stopped run left outside the '
            f'rotation (max_keep_ckpts=1, best by accuracy/top1): '
            f'{", ".join(removed)}.') in out, out + err
    names = sorted(f for f in os.listdir(work_dir) if f.endswith('.pth'))
    assert [n for n in names if n.startswith('epoch_')] == ['epoch_3.pth']
    assert len([n for n in names if n.startswith('best_')]) == 1


@pytest.mark.slow
def test_moved_work_dir_resumes_from_its_own_files(tmp_path, tiny_run_copy,
                                                   capsys):
    config, old, _ = tiny_run_copy
    (old / 'epoch_2.pth').unlink()  # as after one epoch
    # the pointer names the old folder's file, as after a move
    (old / 'last_checkpoint').write_text(str(old / 'epoch_1.pth'))
    moved = tmp_path / 'moved'
    shutil.copytree(old, moved)
    (old / 'epoch_1.pth').write_bytes(b'not the file to resume from')
    assert run_main('train.py', config, '--work-dir', moved, '--resume',
                    '--cfg-options', 'train_cfg.max_epochs=2') == 0
    assert 'resumed epoch: 1' in ''.join(capsys.readouterr())
    assert (moved / 'last_checkpoint').read_text() == str(
        moved / 'epoch_2.pth')
    assert osp.isfile(moved / 'epoch_2.pth')


# -- one-line errors for the command line ------------------------------------
def test_missing_config_is_one_line(tmp_path, capsys):
    missing = osp.join(REPO, 'configs', 'revode', 'hamiltonain_cifar10.py')
    _, err = main_error(capsys, 'train.py', missing, '--work-dir', tmp_path)
    assert f'The config {missing} does not exist' in err
    assert 'hamiltonian_cifar10.py' in err
    _, err = main_error(capsys, 'test.py', missing, 'x.pth')
    assert 'does not exist' in err


def test_unknown_cfg_options_key_is_refused(tmp_path, cifar_root, capsys):
    config = tiny_config(tmp_path / 'tiny.py', 'hamiltonian_cifar10.py',
                         cifar_root)
    for key, hint in (('train_cfgs.max_epochs=1', 'train_cfg'),
                      ('model.backbon.h=0.2', 'backbone'),
                      ('optim_wraper.optimizer.lr=1', 'optim_wrapper'),
                      ('model.backbone.hh=0.2', None)):
        _, err = main_error(capsys, 'train.py', config, '--work-dir',
                            tmp_path, '--cfg-options', key)
        assert f'--cfg-options {key.split("=")[0]}' in err, err
        assert f'+{key.split("=")[0]}=' in err, err
        if hint:
            assert f'Did you mean {hint}' in err, err


def test_known_keys_and_plus_keys_are_accepted(tmp_path, cifar_root,
                                              capsys):
    """Arguments of the built class, Runner keys and +new keys pass the
    check (the run then fails on purpose at the missing checkpoint)."""
    config = tiny_config(tmp_path / 'tiny.py', 'hamiltonian_cifar10.py',
                         cifar_root)
    _, err = main_error(
        capsys, 'train.py', config, '--work-dir', tmp_path, '--cfg-options',
        'model.backbone.h=0.2', 'train_dataloader.drop_last=True',
        '+my_note=1', f'load_from={tmp_path / "none.pth"}')
    assert 'does not exist' in err
    assert '--cfg-options' not in err


@pytest.mark.slow
def test_config_mistakes_are_one_line(tmp_path, cifar_root, capsys,
                                     monkeypatch):
    """A value a class refuses, a config that does not parse, a missing
    _base_: exit 1, one line, no traceback."""
    config = tiny_config(tmp_path / 'tiny.py', 'hamiltonian_cifar10.py',
                         cifar_root)
    syntax = tmp_path / 'syntax.py'
    syntax.write_text('model = dict(\n')
    missing = tmp_path / 'missing_base.py'
    missing.write_text("_base_ = 'nothere.py'\n")
    monkeypatch.delenv('MMREVODE_DEBUG', raising=False)
    for args, phrase in (
            ([config, '--cfg-options', 'model.backbone.h=abc'],
             "h (the step size) must be a positive number, got 'abc'"),
            ([config, '--cfg-options', 'model.backbone.mode=reverse'],
             'mode must be one of'),
            ([syntax], 'SyntaxError'), ([missing], 'nothere.py')):
        _, err = main_error(capsys, 'train.py', *args, '--work-dir',
                            tmp_path / 'w')
        assert phrase in err and 'MMREVODE_DEBUG=1' in err, err
