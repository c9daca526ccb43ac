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
from mmrevode.engine import CheckpointError, find_resume_checkpoint

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


def _toy_runner(work_dir, resume_argument=False, out_dir=None, **cfg):
    """A toy Runner; ``resume_argument=True`` gives it ``resume=True`` as
    an argument only, not in its config; ``out_dir``, the checkpoint
    hook's."""
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
        default_hooks=dict(checkpoint=dict(
            type='SafeCheckpointHook', interval=1, out_dir=out_dir)),
        experiment_name=f'toy_checkpoint_hook_{next(_RUNS)}',
        cfg=cfg,
        **cfg,
        **(dict(resume=True) if resume_argument else {}))


def test_mmengine_resume_alone_resumes_from_the_folders_own_file(tmp_path):
    """``last_checkpoint`` holds the absolute path, as MMEngine writes it,
    so a Runner given ``resume=True`` alone (MMDetection's own
    ``tools/train.py --resume``) resumes. In a moved or copied work
    directory the pointer names the old folder's file: before MMEngine
    reads it, the hook points it at this folder's file of the same name,
    however ``resume`` was given; a partial copy without that file is
    refused. It never resumes from another folder."""
    first = tmp_path / 'first'
    _toy_runner(first).train()
    assert (first / 'last_checkpoint').read_text() == str(
        first / 'epoch_1.pth')
    runner = _toy_runner(first, resume=True, max_epochs=2)
    runner.train()
    assert runner.epoch == 2
    assert (first / 'last_checkpoint').read_text() == str(
        first / 'epoch_2.pth')

    for name in ('copy', 'copy_given_by_argument'):
        copy = tmp_path / name
        shutil.copytree(first, copy)
        if name == 'copy':
            runner = _toy_runner(copy, resume=True, max_epochs=3)
        else:  # resume=True as a Runner argument, not in its config
            runner = _toy_runner(copy, resume_argument=True, max_epochs=3)
        runner.train()
        assert runner.epoch == 3
        assert (copy / 'last_checkpoint').read_text() == str(
            copy / 'epoch_3.pth')
    # the original folder was not touched
    assert not (first / 'epoch_3.pth').exists()

    # a partial copy: the pointer's file is missing here
    partial = tmp_path / 'partial'
    shutil.copytree(first, partial)
    (partial / 'epoch_2.pth').unlink()
    with pytest.raises(CheckpointError) as info:
        _toy_runner(partial, resume=True, max_epochs=3).train()
    assert str(info.value) == (
        f'resume=True without load_from: {partial / "last_checkpoint"} '
        f'names {first / "epoch_2.pth"}, and {partial} has no '
        'epoch_2.pth (a partial copy, or a deleted checkpoint?). Give the '
        'checkpoint to resume from: --resume PATH, or load_from=PATH with '
        'resume=True.')
    # the same for this folder's own pointer, absolute or relative, to a
    # file deleted since
    for written in (str(partial / 'epoch_2.pth'), 'epoch_2.pth'):
        (partial / 'last_checkpoint').write_text(written)
        with pytest.raises(CheckpointError, match='has no epoch_2.pth'):
            _toy_runner(partial, resume=True, max_epochs=3).train()
    # a relative pointer whose file is here is made absolute, and resumes
    (partial / 'last_checkpoint').write_text('epoch_1.pth')
    runner = _toy_runner(partial, resume=True, max_epochs=2)
    runner.train()
    assert runner.epoch == 2
    assert (partial / 'last_checkpoint').read_text() == str(
        partial / 'epoch_2.pth')
    # with the checkpoint named, it resumes
    runner = _toy_runner(partial, resume=True, max_epochs=3,
                         load_from=str(partial / 'epoch_1.pth'))
    runner.train()
    assert runner.epoch == 3


def test_checkpoints_saved_in_the_work_dir_through_out_dir(tmp_path):
    """``out_dir`` set to the work directory's parent: MMEngine saves into
    ``out_dir/<work_dir's name>``, the work directory itself, so a copy is
    repointed and a partial copy refused as without ``out_dir``."""
    first = tmp_path / 'runs' / 'first'
    _toy_runner(first, out_dir=str(first.parent)).train()
    copy = tmp_path / 'copies' / 'first'
    shutil.copytree(first, copy)
    runner = _toy_runner(copy, out_dir=str(copy.parent), resume=True,
                         max_epochs=2)
    runner.train()
    assert runner.epoch == 2
    assert (copy / 'last_checkpoint').read_text() == str(
        copy / 'epoch_2.pth')
    assert not (first / 'epoch_2.pth').exists()
    partial = tmp_path / 'partial' / 'first'
    shutil.copytree(first, partial)
    (partial / 'epoch_1.pth').unlink()
    with pytest.raises(CheckpointError, match='has no epoch_1.pth'):
        _toy_runner(partial, out_dir=str(partial.parent), resume=True,
                    max_epochs=2).train()


def test_out_dir_elsewhere_is_left_to_mmengine(tmp_path):
    """``out_dir`` that spells the work directory another way (trailing
    slash): MMEngine saves into ``work_dir/<name>`` and points the work
    directory's ``last_checkpoint`` there. The run resumes from that
    folder, not from an older file of the same name in the work
    directory, and ``--resume`` finds the same file."""
    work = tmp_path / 'wd'
    out_dir = str(work) + '/'
    _toy_runner(work, out_dir=out_dir).train()
    assert (work / 'last_checkpoint').read_text() == str(
        work / 'wd' / 'epoch_1.pth')
    shutil.copy(work / 'wd' / 'epoch_1.pth', work / 'epoch_1.pth')  # older
    runner = _toy_runner(work, out_dir=out_dir, resume=True, max_epochs=2)
    runner.train()
    assert runner.epoch == 2
    assert (work / 'last_checkpoint').read_text() == str(
        work / 'wd' / 'epoch_2.pth')
    assert find_resume_checkpoint(str(work), out_dir) == str(
        work / 'wd' / 'epoch_2.pth')
    # without out_dir it would be this folder's own file, never another's
    with pytest.raises(CheckpointError, match='has no epoch_2.pth'):
        find_resume_checkpoint(str(work))


def test_a_remote_pointer_is_left_alone(tmp_path):
    """A pointer to ``s3://...`` is MMEngine's to read; a local file of the
    same name does not replace it."""
    work = tmp_path / 'work'
    _toy_runner(work).train()
    (work / 'last_checkpoint').write_text('s3://bucket/work/epoch_1.pth')
    _toy_runner(work).train()  # no resume: the pointer is rewritten by
    # the save, not by the repointing before it
    (work / 'last_checkpoint').write_text('s3://bucket/work/epoch_1.pth')
    runner = _toy_runner(work)
    runner.call_hook('before_run')
    assert (work / 'last_checkpoint').read_text() == \
        's3://bucket/work/epoch_1.pth'


def test_a_failed_repointing_is_one_error(tmp_path, monkeypatch):
    """Writing the copied folder's pointer fails (a full disk): an error
    on every rank (the outcome is broadcast), not a rank left waiting."""
    import mmrevode.engine.checkpoint_hook as hook_module
    first = tmp_path / 'first'
    _toy_runner(first).train()
    copy = tmp_path / 'copy'
    shutil.copytree(first, copy)

    def full_disk(*args, **kwargs):
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(hook_module, 'atomic_write', full_disk)
    with pytest.raises(CheckpointError, match='Could not point .* No space'):
        _toy_runner(copy, resume=True, max_epochs=2).train()


def test_a_failed_pointer_write_leaves_the_previous_pointer(
        tmp_path, monkeypatch):
    """MMEngine writes ``last_checkpoint`` with a plain ``open``; a full
    disk truncates it. The hook puts the previous pointer back, so a resume
    still finds a complete checkpoint."""
    import builtins

    import mmengine.hooks.checkpoint_hook as mmengine_hook
    _toy_runner(tmp_path).train()

    def full_disk_open(path, mode='r', *args, **kwargs):
        f = builtins.open(path, mode, *args, **kwargs)
        if 'w' in mode and str(path).endswith('last_checkpoint'):
            f.close()  # truncated, then the disk is full
            raise OSError(28, 'No space left on device')
        return f

    monkeypatch.setattr(mmengine_hook, 'open', full_disk_open, raising=False)
    with pytest.raises(OSError, match='No space left'):
        _toy_runner(tmp_path, resume=True, max_epochs=2).train()
    assert (tmp_path / 'last_checkpoint').read_text() == str(
        tmp_path / 'epoch_1.pth')
    assert (tmp_path / 'epoch_1.pth').is_file()


def test_a_work_directory_reached_through_a_link_resumes(tmp_path):
    real, link = tmp_path / 'real', tmp_path / 'link'
    _toy_runner(real).train()
    link.symlink_to(real)
    runner = _toy_runner(link, resume=True, max_epochs=2)
    runner.train()
    assert runner.epoch == 2


def test_complex_weights_that_are_not_finite_are_found():
    import torch

    from mmrevode.engine.checkpoint_fit import first_non_finite
    assert first_non_finite({
        'weight': torch.ones(2),
        'phase': torch.tensor([complex('nan')])
    }) == 'phase'
    assert first_non_finite({'phase': torch.tensor([1j])}) is None
