"""SafeCheckpointHook (a failed save keeps every earlier checkpoint, no
non-finite weights are saved, loaded weights must fit) and DivergenceHook.

EpochSeedHook and seed_worker_by_epoch are covered end to end by the resume
test in test_tools.
"""
import math
import os
import os.path as osp

import numpy as np
import pytest
import torch
from engine_utils import cifar_loaders
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from mmengine.runner import Runner

import mmrevode  # noqa: F401
from mmrevode.engine import (CheckpointMismatchError, DivergenceError,
                             DivergenceHook, SafeCheckpointHook,
                             checkpoint_mismatches, load_from_local)


class _FailSaves:
    """Makes every later fsync fail, as a full disk would."""
    active = False


class _FailFromEpoch(Hook):
    priority = 'VERY_HIGH'

    def __init__(self, epoch):
        self.epoch = epoch

    def before_train_epoch(self, runner):
        if runner.epoch == self.epoch:
            _FailSaves.active = True


HOOKS.register_module(module=_FailFromEpoch, force=True)


class _FailBestSaves(Hook):
    """Every save from the first validation on fails: the epoch's own
    checkpoint is written, its best checkpoint is not."""

    def before_val_epoch(self, runner):
        _FailSaves.active = True


HOOKS.register_module(module=_FailBestSaves, force=True)


@pytest.fixture
def failing_fsync(monkeypatch):
    real = os.fsync

    def fsync(fd):
        if _FailSaves.active:
            raise OSError(28, 'No space left on device')
        return real(fd)

    _FailSaves.active = False
    monkeypatch.setattr(os, 'fsync', fsync)
    yield
    _FailSaves.active = False


def _runner(work_dir, data_root, max_epochs, fail_from=None, hooks=(),
            **kwargs):
    loader, val_loader = cifar_loaders(data_root, batch_size=10)
    custom_hooks = list(hooks)
    if fail_from is not None:
        custom_hooks.append(dict(type='_FailFromEpoch', epoch=fail_from))
    return Runner(
        model=dict(
            type='ImageClassifier',
            backbone=dict(
                type='HamiltonianNet',
                arch=dict(blocks=[1], widths=[8])),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=10, in_channels=8),
            data_preprocessor=dict(
                type='ClsDataPreprocessor', mean=[128] * 3, std=[64] * 3)),
        work_dir=work_dir,
        train_dataloader=loader,
        val_dataloader=val_loader,
        val_evaluator=dict(type='Accuracy', topk=(1, )),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs, val_interval=1),
        val_cfg=dict(),
        optim_wrapper=kwargs.pop('optim_wrapper', dict(
            type='GuardedOptimWrapper', optimizer=dict(type='SGD', lr=0.01))),
        default_hooks=kwargs.pop(
            'default_hooks',
            dict(
                logger=dict(type='LoggerHook', interval=100),
                checkpoint=dict(
                    type='SafeCheckpointHook',
                    interval=1,
                    max_keep_ckpts=1,
                    save_best='accuracy/top1',
                    rule='greater'))),
        custom_hooks=custom_hooks,
        default_scope='mmpretrain',
        randomness=dict(seed=0),
        experiment_name=f'safe_ckpt_{osp.basename(work_dir)}',
        # SafeCheckpointHook reads what was loaded from the run's config,
        # as Runner.from_cfg passes it
        cfg=dict(load_from=kwargs.get('load_from'),
                 resume=kwargs.get('resume', False)),
        **kwargs)


def _checkpoint_hook(runner):
    hooks = [h for h in runner.hooks if isinstance(h, SafeCheckpointHook)]
    assert len(hooks) == 1
    return hooks[0]


def test_keeps_max_keep_ckpts_and_writes_pointer(tmp_path, data_root):
    runner = _runner(str(tmp_path), data_root, max_epochs=3)
    runner.train()
    files = sorted(f for f in os.listdir(tmp_path) if f.endswith('.pth'))
    assert 'epoch_3.pth' in files
    assert 'epoch_1.pth' not in files and 'epoch_2.pth' not in files
    assert len([f for f in files if f.startswith('best_')]) == 1
    assert not [f for f in os.listdir(tmp_path) if f.endswith('.tmp')]
    with open(tmp_path / 'last_checkpoint') as f:
        assert f.read() == str(tmp_path / 'epoch_3.pth')
    checkpoint = load_from_local(str(tmp_path / 'epoch_3.pth'))
    assert checkpoint['message_hub']['runtime_info']['keep_ckpt_ids'] == [3]


def test_a_failed_first_best_save_leaves_no_best_record(
        tmp_path, data_root, failing_fsync):
    runner = _runner(str(tmp_path), data_root, max_epochs=1,
                     hooks=[dict(type='_FailBestSaves')])
    with pytest.raises(OSError, match='No space left'):
        runner.train()
    assert (tmp_path / 'epoch_1.pth').is_file()
    assert not [f for f in os.listdir(tmp_path) if f.startswith('best_')]
    # neither the hook nor the message hub names the file that failed
    assert _checkpoint_hook(runner).best_ckpt_path is None
    assert not [k for k in runner.message_hub.runtime_info
                if k.startswith('best_')]


def test_failed_save_keeps_the_earlier_checkpoint(tmp_path, data_root,
                                                   failing_fsync):
    runner = _runner(str(tmp_path), data_root, max_epochs=2, fail_from=1)
    with pytest.raises(OSError, match='No space left'):
        runner.train()
    files = sorted(os.listdir(tmp_path))
    # MMEngine's hook would have deleted epoch_1.pth before the failed save
    assert 'epoch_1.pth' in files
    assert 'epoch_2.pth' not in files
    assert not [f for f in files if f.endswith('.tmp')]
    with open(tmp_path / 'last_checkpoint') as f:
        assert f.read() == str(tmp_path / 'epoch_1.pth')
    checkpoint = load_from_local(str(tmp_path / 'epoch_1.pth'))
    assert checkpoint['meta']['epoch'] == 1
    hook = _checkpoint_hook(runner)
    assert list(hook.keep_ckpt_ids) == [1]
    assert runner.message_hub.get_info('last_ckpt') == str(
        tmp_path / 'epoch_1.pth')


def test_failed_best_save_keeps_the_previous_best(tmp_path, data_root,
                                                  failing_fsync):
    runner = _runner(str(tmp_path), data_root, max_epochs=1)
    runner.train()
    hook = _checkpoint_hook(runner)
    old_best = hook.best_ckpt_path
    assert osp.isfile(old_best)

    _FailSaves.active = True
    with pytest.raises(OSError, match='No space left'):
        hook._save_best_checkpoint(runner, {'accuracy/top1': 1000.0})
    assert osp.isfile(old_best)
    load_from_local(old_best)
    assert not [f for f in os.listdir(tmp_path) if f.endswith('.tmp')]

    _FailSaves.active = False
    runner.train_loop._epoch = 5  # a later epoch, i.e. a new file name
    hook._save_best_checkpoint(runner, {'accuracy/top1': 2000.0})
    assert hook.best_ckpt_path != old_best
    assert osp.isfile(hook.best_ckpt_path)
    assert not osp.exists(old_best)
    state = load_from_local(hook.best_ckpt_path)['state_dict']
    assert all(torch.equal(v, runner.model.state_dict()[k])
               for k, v in state.items())


class _PoisonLoss(Hook):
    """Makes the loss of the given iterations NaN (through the gradients:
    the head's weights get a NaN gradient hook for that step)."""
    priority = 'VERY_HIGH'

    def __init__(self, iters):
        self.iters = set(iters)
        self.handle = None

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter in self.iters:
            weight = runner.model.head.fc.weight
            self.handle = weight.register_hook(
                lambda grad: grad * float('nan'))

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        if self.handle is not None:
            self.handle.remove()
            self.handle = None


def _weights(runner):
    return {k: v.detach().clone() for k, v in
            runner.model.named_parameters()}


def test_divergence_stop_leaves_the_weights_finite(tmp_path, data_root):
    runner = _runner(
        str(tmp_path), data_root, max_epochs=2,
        hooks=[DivergenceHook(), _PoisonLoss([2])])
    with pytest.raises(DivergenceError) as info:
        runner.train()
    message = str(info.value)
    assert 'Stopped at iteration 3 (epoch 2)' in message
    assert 'gradient norm = nan' in message
    assert 'the step was not applied' in message
    assert f'{tmp_path / "epoch_1.pth"}' in message
    assert all(torch.isfinite(v).all() for v in runner.model.state_dict()
               .values() if v.is_floating_point())


def test_divergence_skip_skips_only_that_step(tmp_path, data_root):
    poison = _PoisonLoss([1])
    runner = _runner(
        str(tmp_path), data_root, max_epochs=1,
        hooks=[DivergenceHook(action='skip'), poison],
        default_hooks=dict(checkpoint=dict(type='SafeCheckpointHook',
                                           interval=1)))
    seen = {}

    class Record(Hook):
        priority = 'LOWEST'

        def after_train_iter(self, runner, batch_idx, data_batch=None,
                             outputs=None):
            seen[runner.iter] = _weights(runner)

        def before_train_iter(self, runner, batch_idx, data_batch=None):
            seen[f'before {runner.iter}'] = _weights(runner)

    runner.register_hook(Record())
    runner.train()
    # the poisoned step changed no weight; the others trained
    before, after = seen['before 1'], seen[1]
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not torch.equal(seen['before 0']['head.fc.weight'],
                           seen[0]['head.fc.weight'])


def test_too_many_skips_stop(tmp_path, data_root):
    runner = _runner(
        str(tmp_path), data_root, max_epochs=1,
        hooks=[DivergenceHook(action='skip', max_skips=1),
               _PoisonLoss([0, 1])])
    with pytest.raises(DivergenceError, match='2 steps in a row'):
        runner.train()


def test_divergence_hook_arguments():
    with pytest.raises(ValueError, match="action must be one of"):
        DivergenceHook(action='ignore')
    with pytest.raises(ValueError, match='max_skips'):
        DivergenceHook(max_skips=-1)


def test_non_finite_weights_are_never_saved(tmp_path, data_root):
    runner = _runner(str(tmp_path), data_root, max_epochs=1)
    runner.train()
    hook = _checkpoint_hook(runner)
    with torch.no_grad():
        runner.model.head.fc.weight[0, 0] = float('inf')
    runner.train_loop._epoch = 1
    with pytest.raises(DivergenceError, match='head.fc.weight is not finite'):
        hook._save_checkpoint(runner)
    with pytest.raises(DivergenceError, match='epoch_1.pth'):
        hook._save_best_checkpoint(runner, {'accuracy/top1': 1000.0})
    assert not osp.exists(tmp_path / 'epoch_2.pth')


def test_checkpoint_mismatches():
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    good = dict(state_dict={f'module.{k}': v
                            for k, v in model.state_dict().items()})
    assert checkpoint_mismatches(model, good) == []
    assert checkpoint_mismatches(model, dict(state_dict={})) == \
        ['it holds no weights']
    bad = dict(model.state_dict())
    bad.pop('0.bias')
    bad['extra'] = torch.zeros(1)
    bad['0.weight'] = torch.zeros(4, 3)
    bad['1.weight'] = torch.full((2, ), float('nan'))
    problems = checkpoint_mismatches(model, dict(state_dict=bad))
    assert problems == [
        '1 missing keys (0.bias)', '1 unexpected keys (extra)',
        '1 different shapes (0.weight (4, 3) vs (2, 3) in the model)',
        'non-finite values in 1.weight (a diverged run)'
    ]


def test_load_from_must_fit(tmp_path, data_root):
    runner = _runner(str(tmp_path / 'a'), data_root, max_epochs=1)
    runner.train()
    other = torch.nn.Linear(2, 2)
    path = str(tmp_path / 'other.pth')
    torch.save(dict(state_dict=other.state_dict(), meta={}), path)
    runner = _runner(str(tmp_path / 'b'), data_root, max_epochs=1,
                     load_from=path)
    with pytest.raises(CheckpointMismatchError,
                       match=f'The checkpoint {path} does not fit'):
        runner.train()
    runner = _runner(
        str(tmp_path / 'c'), data_root, max_epochs=1, load_from=path,
        default_hooks=dict(checkpoint=dict(
            type='SafeCheckpointHook', strict_load=False)))
    runner.train()  # loads what fits (nothing), as MMEngine does


class _RandomDraws(torch.utils.data.Dataset):
    """Each item is what NumPy, Python and torch draw in the worker."""

    def __len__(self):
        return 8

    def __getitem__(self, index):
        import random
        return torch.tensor([np.random.rand(), random.random(),
                             torch.rand(()).item()])


def _epoch_draws(seed, epoch, worker_init_fn):
    from mmrevode.engine import seed_worker_by_epoch  # noqa: F401
    torch.manual_seed(seed + epoch)  # what EpochSeedHook does
    loader = torch.utils.data.DataLoader(
        _RandomDraws(), batch_size=2, num_workers=2,
        worker_init_fn=worker_init_fn,
        multiprocessing_context='fork')
    return torch.cat(list(loader))


def test_workers_draw_per_epoch_and_resume_exactly():
    from functools import partial

    from mmengine.dataset import worker_init_fn as mmengine_init

    from mmrevode.engine import seed_worker_by_epoch
    first, second = (_epoch_draws(0, e, seed_worker_by_epoch)
                     for e in (0, 1))
    assert not torch.equal(first, second)  # new augmentations every epoch
    # a resumed run recreates the workers of epoch 1: the same draws
    assert torch.equal(second, _epoch_draws(0, 1, seed_worker_by_epoch))
    # MMEngine's default repeats the same draws every epoch
    default = partial(mmengine_init, num_workers=2, rank=0, seed=0)
    assert torch.equal(_epoch_draws(0, 0, default),
                       _epoch_draws(0, 1, default))


# -- what a killed run leaves beside the rotation ----------------------------
def _log_lines(runner):
    """Collects what ``runner`` logs at INFO and above."""
    import logging
    lines = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: lines.append(record.getMessage())
    runner.logger.addHandler(handler)
    return lines


def _keep_two(**best):
    return dict(
        logger=dict(type='LoggerHook', interval=100),
        checkpoint=dict(type='SafeCheckpointHook', interval=1,
                        max_keep_ckpts=2, **best))


def test_resume_removes_what_a_killed_run_left(tmp_path, data_root):
    work_dir = tmp_path / 'work'
    hooks = _keep_two(save_best='accuracy/top1', rule='greater')
    runner = _runner(str(work_dir), data_root, max_epochs=3,
                     default_hooks=hooks)
    runner.train()
    best = osp.basename(_checkpoint_hook(runner).best_ckpt_path)
    assert sorted(f for f in os.listdir(work_dir) if f.startswith(
        'epoch_')) == ['epoch_2.pth', 'epoch_3.pth']
    real = (work_dir / 'epoch_2.pth').read_bytes()
    # a kill after epoch_3.pth and the pointer were written, before
    # epoch_1.pth was deleted; one before the previous best was deleted
    superseded = next(f'best_accuracy_top1_epoch_{n}.pth' for n in (1, 2, 3)
                      if f'best_accuracy_top1_epoch_{n}.pth' != best)
    placed = ['epoch_1.pth', superseded]
    # not of this hook's naming, or not in the output folder, or newer than
    # the checkpoint resumed from: left alone
    kept = ['epoch_1.pth.bak', 'iter_1.pth', 'best_loss_epoch_1.pth',
            'epoch_x.pth', 'epoch_7.pth', 'sub/epoch_1.pth']
    (work_dir / 'sub').mkdir()
    outside = tmp_path / 'epoch_1.pth'
    for name in placed + kept + [outside]:
        (work_dir / name).write_bytes(real)

    runner = _runner(str(work_dir), data_root, max_epochs=4,
                     default_hooks=hooks, resume=True,
                     load_from=str(work_dir / 'epoch_3.pth'))
    lines = _log_lines(runner)
    runner.train()
    names = set(os.listdir(work_dir)) | {
        f'sub/{n}' for n in os.listdir(work_dir / 'sub')}
    assert not names & set(placed)
    assert set(kept) <= names and outside.exists()
    # the rotation goes on: epoch_2 out, 3 and 4 kept
    assert {'epoch_3.pth', 'epoch_4.pth'} <= names
    assert 'epoch_2.pth' not in names
    assert sum(n.startswith('best_accuracy_top1_') for n in names) == 1
    removed = [line for line in lines if line.startswith('Removed')]
    assert removed == [
        'Removed 2 checkpoint(s) that a stopped run left outside the '
        'rotation (max_keep_ckpts=2, best by accuracy/top1): '
        f'{", ".join(sorted(placed))}.'
    ]
    assert any(line.startswith('Left epoch_7.pth in') for line in lines)


def test_resume_never_removes_the_checkpoint_resumed_from(tmp_path,
                                                          data_root):
    work_dir = tmp_path / 'work'
    runner = _runner(str(work_dir), data_root, max_epochs=2,
                     default_hooks=_keep_two())
    runner.train()
    # a copy of the epoch-2 state under an older name: not kept by the
    # rotation (its record keeps 1 and 2), but the file resumed from
    (work_dir / 'epoch_0.pth').write_bytes(
        (work_dir / 'epoch_2.pth').read_bytes())
    runner = _runner(str(work_dir), data_root, max_epochs=3,
                     default_hooks=_keep_two(), resume=True,
                     load_from=str(work_dir / 'epoch_0.pth'))
    runner.train()
    assert (work_dir / 'epoch_0.pth').exists()
    assert sorted(f for f in os.listdir(work_dir) if f.endswith('.pth')) == \
        ['epoch_0.pth', 'epoch_2.pth', 'epoch_3.pth']


def test_a_new_run_leaves_earlier_files(tmp_path, data_root):
    """Only a resumed run knows which files are its own."""
    work_dir = tmp_path / 'work'
    work_dir.mkdir()
    for name in ('epoch_5.pth', 'best_accuracy_top1_epoch_5.pth'):
        (work_dir / name).write_bytes(b'an earlier run')
    _runner(str(work_dir), data_root, max_epochs=1).train()
    assert (work_dir / 'epoch_5.pth').exists()
    assert (work_dir / 'best_accuracy_top1_epoch_5.pth').exists()


def test_weights_that_are_not_tensors_do_not_fit():
    """torch skips such a value and MMEngine only logs it: the model would
    keep its initial weights there."""
    model = torch.nn.Linear(2, 2)
    state = dict(model.state_dict(), weight=0.0)
    problems = checkpoint_mismatches(model, dict(state_dict=state))
    assert problems == ['1 values that are not tensors (weight (float))']
    problems = checkpoint_mismatches(model,
                                     dict(state_dict={1: torch.ones(1)}))
    assert problems and 'strings' in problems[0]


def test_guarded_wrapper_skips_a_non_finite_step_without_patching():
    import warnings

    from mmengine.optim import MultiStepLR

    from mmrevode.engine import GuardedOptimWrapper
    model = torch.nn.Linear(3, 2)
    wrapper = GuardedOptimWrapper(
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    scheduler = MultiStepLR(wrapper, milestones=[1], gamma=0.1)
    with warnings.catch_warnings():
        # MMEngine warns when step was replaced after the scheduler was built
        warnings.simplefilter('error')
        before = model.weight.detach().clone()
        wrapper.update_params(model(torch.full((4, 3), float('nan'))).sum())
        assert torch.equal(model.weight, before)
        assert math.isnan(wrapper.pop_skipped_grad_norm())
        assert wrapper.pop_skipped_grad_norm() is None
        wrapper.update_params(model(torch.ones(4, 3)).sum())
        assert not torch.equal(model.weight, before)
        assert wrapper.pop_skipped_grad_norm() is None
        scheduler.step()
    assert wrapper.param_groups[0]['lr'] == pytest.approx(0.01)


def test_divergence_hook_warns_about_an_unguarded_wrapper(
        tmp_path, data_root, monkeypatch):
    from mmrevode.engine import divergence
    logged = []
    monkeypatch.setattr(divergence, 'print_log',
                        lambda msg, **kwargs: logged.append(msg))
    runner = _runner(
        str(tmp_path), data_root, max_epochs=1, hooks=[DivergenceHook()],
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)))
    runner.train()
    assert any('GuardedOptimWrapper' in m and 'only the loss' in m
               for m in logged), logged
