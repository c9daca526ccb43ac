"""The runner scripts' launcher: config loading, checked --cfg-options,
the work-directory lock, resume resolution and one-line errors."""
import multiprocessing
import os
import os.path as osp

import pytest
import torch
from mmengine.config import Config

import mmrevode  # noqa: F401
from mmrevode.engine.launcher import (WorkDirBusyError, WorkDirLock,
                                      is_main_launch, load_config,
                                      resolve_resume, run_cli)
from mmrevode.engine.options import LaunchError, merge_cfg_options

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(REPO, 'configs', 'revode', 'hamiltonian_cifar10.py')


@pytest.fixture(scope='module')
def cfg():
    return load_config(CONFIG)


def test_missing_config_suggests_near_names():
    with pytest.raises(LaunchError,
                       match='does not exist. Did you mean '
                       'hamiltonian_cifar10.py'):
        load_config(CONFIG.replace('hamiltonian', 'hamiltonain'))


@pytest.mark.parametrize('key,message', [
    ('train_cfgs.max_epochs', "the config has no key 'train_cfgs'. Did you "
     'mean train_cfg?'),
    ('model.backbon.h', "model has no key 'backbon'. Did you mean "
     'backbone?'),
    ('model.backbone.hh', "model.backbone has no key 'hh'"),
    ('train_cfg.max_epoch', "train_cfg has no key 'max_epoch'. Did you mean "
     'max_epochs'),
    ('compiled', "Did you mean compile?"),
])
def test_unknown_keys_are_refused(cfg, key, message):
    copy = Config(cfg.to_dict())
    with pytest.raises(LaunchError) as info:
        merge_cfg_options(copy, {key: 1})
    assert message in str(info.value)
    assert f'+{key}=...' in str(info.value)


def test_known_keys_are_merged(cfg):
    copy = Config(cfg.to_dict())
    merge_cfg_options(
        copy, {
            'train_cfg.max_epochs': 3,
            'model.backbone.h': 0.2,  # an argument of HamiltonianNet
            'compile': True,  # read by MMEngine's Runner
            'train_dataloader.drop_last': True,  # a DataLoader argument
            'custom_hooks.1.action': 'skip',  # list index
            '+brand_new.key': 5,  # added on purpose
            'model.backbone.norm_cfg.type': 'SyncBN',  # below an argument
            'optim_wrapper.accumulative_counts': 4,  # OptimWrapper's
            'randomness.diff_rank_seed': True,  # Runner.set_randomness's
        })
    assert copy.train_cfg.max_epochs == 3
    assert copy.model.backbone.h == 0.2
    assert copy.compile is True
    assert copy.train_dataloader.drop_last is True
    assert copy.custom_hooks[1].action == 'skip'
    assert copy.brand_new.key == 5
    assert copy.model.backbone.norm_cfg.type == 'SyncBN'
    assert copy.optim_wrapper.accumulative_counts == 4


def _hold_lock(work_dir, ready, release):
    with WorkDirLock(work_dir):
        ready.set()
        release.wait(30)


def test_work_dir_lock(tmp_path):
    work_dir = str(tmp_path / 'work')
    context = multiprocessing.get_context('fork')
    ready, release = context.Event(), context.Event()
    holder = context.Process(
        target=_hold_lock, args=(work_dir, ready, release))
    holder.start()
    try:
        assert ready.wait(30)
        with pytest.raises(WorkDirBusyError) as info:
            WorkDirLock(work_dir).acquire()
        assert f'in use by another run (process {holder.pid} on' in str(
            info.value)
    finally:
        release.set()
        holder.join(30)
    # released when its holder ends (also when it is killed)
    with WorkDirLock(work_dir) as lock:
        assert f'process {os.getpid()}' in open(lock.path).read()

    ready, release = context.Event(), context.Event()
    killed = context.Process(
        target=_hold_lock, args=(work_dir, ready, release))
    killed.start()
    assert ready.wait(30)
    killed.kill()
    killed.join(30)
    WorkDirLock(work_dir).acquire().release()


def test_resume_keeps_the_checkpoint_seed(tmp_path):
    work_dir = tmp_path / 'work'
    work_dir.mkdir()
    torch.save(dict(meta=dict(seed=1234), state_dict={}),
               work_dir / 'epoch_1.pth')
    (work_dir / 'last_checkpoint').write_text('epoch_1.pth')
    cfg = Config(dict(work_dir=str(work_dir), randomness=dict(seed=None)))
    resolve_resume(cfg, 'auto')
    assert cfg.resume is True
    assert cfg.load_from == str(work_dir / 'epoch_1.pth')
    assert cfg.randomness.seed == 1234
    # a seed set in the config wins
    cfg = Config(dict(work_dir=str(work_dir), randomness=dict(seed=7)))
    resolve_resume(cfg, str(work_dir / 'epoch_1.pth'))
    assert cfg.randomness.seed == 7


def test_run_cli_prints_user_errors(capsys, monkeypatch):

    def fails():
        raise LaunchError('what was wrong, and what to do')

    assert run_cli(fails) == 1
    assert capsys.readouterr().err.strip() == \
        'Error: what was wrong, and what to do'
    assert run_cli(lambda: None) == 0

    def crashes():
        raise ZeroDivisionError

    # any other error: one line with its type, or its traceback on request
    monkeypatch.delenv('MMREVODE_DEBUG', raising=False)
    assert run_cli(crashes) == 1
    assert capsys.readouterr().err.strip().startswith(
        'Error: ZeroDivisionError: no message (MMREVODE_DEBUG=1')
    monkeypatch.setenv('MMREVODE_DEBUG', '1')
    with pytest.raises(ZeroDivisionError):
        run_cli(crashes)


@pytest.mark.parametrize('env,main', [
    ({}, True),
    ({'RANK': '0'}, True),
    ({'RANK': '3'}, False),
    # Slurm and Open MPI ranks, before MMEngine sets RANK from them
    ({'SLURM_PROCID': '1'}, False),
    ({'SLURM_PROCID': '0'}, True),
    ({'OMPI_COMM_WORLD_RANK': '2'}, False),
])
def test_is_main_launch(monkeypatch, env, main):
    for name in ('RANK', 'SLURM_PROCID', 'OMPI_COMM_WORLD_RANK'):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert is_main_launch() is main


@pytest.mark.parametrize('checkpoint', [
    [1, 2], dict(meta=[1]), dict(meta=dict(seed='0'))])
def test_resume_of_a_checkpoint_without_a_meta_dict(tmp_path, checkpoint):
    """--resume PATH reads the checkpoint's seed: a file that is not what
    the Runner saves is one CheckpointError, not an AttributeError."""
    from mmengine.config import Config

    from mmrevode.engine import CheckpointError
    from mmrevode.engine.launcher import resolve_resume
    path = str(tmp_path / 'odd.pth')
    torch.save(checkpoint, path)
    cfg = Config(dict(work_dir=str(tmp_path), randomness=dict(seed=None)))
    with pytest.raises(CheckpointError, match='meta dict'):
        resolve_resume(cfg, path)


def test_any_error_is_one_line_unless_debugging(capsys, monkeypatch):
    from mmrevode.engine.launcher import run_cli

    def fails():
        raise ValueError('HamiltonianNet: h (the step size) must be a\n'
                         "positive number, got 'abc'.")

    monkeypatch.delenv('MMREVODE_DEBUG', raising=False)
    assert run_cli(fails) == 1
    err = capsys.readouterr().err.strip()
    assert err == ("Error: ValueError: HamiltonianNet: h (the step size) "
                   "must be a positive number, got 'abc'. (MMREVODE_DEBUG=1 "
                   'shows the traceback)')
    monkeypatch.setenv('MMREVODE_DEBUG', '1')
    with pytest.raises(ValueError, match='step size'):
        run_cli(fails)


def test_numbers_and_switches_are_not_replaced_by_text():
    from mmrevode.engine.options import merge_cfg_options
    cfg = Config(dict(train_cfg=dict(max_epochs=160),
                      model=dict(backbone=dict(out_norm=True))))
    with pytest.raises(LaunchError, match='max_epochs=abc: the config has '
                       'the number 160 here'):
        merge_cfg_options(cfg, {'train_cfg.max_epochs': 'abc'})
    with pytest.raises(LaunchError, match='give True or False'):
        merge_cfg_options(cfg, {'model.backbone.out_norm': 'yes'})
    merge_cfg_options(cfg, {'train_cfg.max_epochs': 3})
    assert cfg.train_cfg.max_epochs == 3


def test_none_may_replace_a_number():
    from mmrevode.engine.options import merge_cfg_options
    cfg = Config(dict(randomness=dict(seed=0)))
    merge_cfg_options(cfg, {'randomness.seed': None})
    assert cfg.randomness.seed is None
