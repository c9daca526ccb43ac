"""SafeCheckpointHook's seam in MMEngine, and what it refuses.

The hook wraps two private methods of MMEngine's ``CheckpointHook``
(``_save_checkpoint_with_step``, ``_save_best_checkpoint``): it relies on
them deleting only what the hook's public records (``keep_ckpt_ids``,
``best_ckpt_path``, ``best_ckpt_path_dict``) name, and only before saving.
Their source is pinned here to MMEngine 0.10.7's; when MMEngine changes
them, read the new code, check that the wrapping still holds (deletions
only after the new file is written, records restored after a failed save)
and record the new hashes.
"""
import hashlib
import inspect
import itertools
import shutil

import pytest
from engine_utils import ToyRegression
from mmengine.hooks import CheckpointHook
from mmengine.runner import Runner

import mmrevode  # noqa: F401
from mmrevode.engine import CheckpointError

#: sha256 of ``inspect.getsource`` of each method, MMEngine 0.10.7.
PINNED = {
    '_save_checkpoint_with_step':
    'cdbc1b54c7c88d9525ab025a9d51a3d3be6e6e36396c0f1151ecf51281fd3482',
    '_save_best_checkpoint':
    '8e1e477297ea08d7125b641c662fc44f5023556b72059986b043b4f147e03f26',
}


@pytest.mark.parametrize('name', sorted(PINNED))
def test_the_wrapped_mmengine_methods_are_those_of_0_10_7(name):
    source = inspect.getsource(getattr(CheckpointHook, name))
    digest = hashlib.sha256(source.encode()).hexdigest()
    assert digest == PINNED[name], (
        f'mmengine.hooks.CheckpointHook.{name} is not the one of MMEngine '
        '0.10.7 that SafeCheckpointHook wraps: check the wrapper in '
        'mmrevode/engine/checkpoint_hook.py against it, then record the new '
        'hash.')


def test_the_pin_fails_for_another_method():
    """The check tells two methods apart (it can fail)."""
    source = inspect.getsource(CheckpointHook._save_checkpoint)
    assert hashlib.sha256(source.encode()).hexdigest() not in PINNED.values()


_RUNS = itertools.count()


def _toy_runner(work_dir, **cfg):
    import torch
    data = [dict(x=torch.ones(2), y=torch.ones(1))] * 2
    return Runner(
        model=ToyRegression(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=data, sampler=dict(type='DefaultSampler', shuffle=False),
            batch_size=2, num_workers=0,
            collate_fn=dict(type='default_collate')),
        train_cfg=dict(by_epoch=True, max_epochs=cfg.pop('max_epochs', 1)),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        default_hooks=dict(checkpoint=dict(type='SafeCheckpointHook',
                                           interval=1)),
        experiment_name=f'toy_checkpoint_hook_{next(_RUNS)}',
        cfg=cfg,
        **cfg)


def test_mmengine_resume_alone_works_and_a_moved_folder_is_refused(
        tmp_path):
    """``last_checkpoint`` holds the absolute path, as MMEngine writes it,
    so a Runner given ``resume=True`` alone (MMDetection's own
    ``tools/train.py --resume``) resumes. In a moved work directory the
    pointer names the old folder's file: that Runner is refused with the
    checkpoint to name, never resumed from another folder."""
    first = tmp_path / 'first'
    _toy_runner(first).train()
    assert (first / 'last_checkpoint').read_text() == str(
        first / 'epoch_1.pth')
    runner = _toy_runner(first, resume=True,
                         max_epochs=2)
    runner.train()
    assert runner.epoch == 2
    assert (first / 'last_checkpoint').read_text() == str(
        first / 'epoch_2.pth')

    moved = tmp_path / 'moved'
    shutil.copytree(first, moved)
    runner = _toy_runner(moved, resume=True,
                         max_epochs=3)
    with pytest.raises(CheckpointError) as info:
        runner.train()
    assert str(info.value) == (
        f'resume=True without load_from: {moved / "last_checkpoint"} '
        f'names {first / "epoch_2.pth"}, but the checkpoint of this work '
        f'directory is {moved / "epoch_2.pth"}. Resume with tools/train.py '
        f'--resume, or set load_from to {moved / "epoch_2.pth"}.')
    # a pointer of older runs, relative to the work directory, the same
    (moved / 'last_checkpoint').write_text('epoch_2.pth')
    with pytest.raises(CheckpointError, match='names epoch_2.pth, but'):
        _toy_runner(moved, resume=True).train()
    # with the checkpoint named, it resumes
    runner = _toy_runner(moved, resume=True,
                         max_epochs=3, load_from=str(moved / 'epoch_2.pth'))
    runner.train()
    assert runner.epoch == 3
