"""Hooks: checkpoints whose failed saves cost nothing, per-epoch seeding."""
import os.path as osp
import random
from collections import deque
from typing import List, Optional

import numpy as np
import torch
from mmengine.dist import is_main_process
from mmengine.fileio.io import _parse_uri_prefix
from mmengine.hooks import CheckpointHook, Hook
from mmengine.registry import HOOKS

from .checkpoint import atomic_write


class _DeferredRemovals:
    """Stands in for a file backend, holding back ``remove``/``rmtree``."""

    def __init__(self, backend):
        self._backend = backend
        self.pending: List[str] = []

    def remove(self, filepath):
        self.pending.append(filepath)

    def rmtree(self, dir_path):
        self.pending.append(dir_path)

    def __getattr__(self, name):
        return getattr(self._backend, name)


@HOOKS.register_module()
class SafeCheckpointHook(CheckpointHook):
    """:class:`mmengine.hooks.CheckpointHook` that saves before it deletes.

    MMEngine's hook deletes the checkpoint that falls out of
    ``max_keep_ckpts``, and the previous best checkpoint, *before* writing
    the new one, and writes straight to the final file name. A save that
    fails (full disk, killed process) then leaves a truncated file and has
    already removed a good one. This hook keeps MMEngine's behaviour and
    arguments, but:

    - writes every checkpoint, and the ``last_checkpoint`` pointer, to a
      temporary file that is renamed into place when complete (the
      ``'atomic_local'`` backend), for local ``out_dir`` when no
      ``backend_args`` / ``file_client_args`` are given;
    - deletes outdated and previous-best checkpoints only after the new one
      is safely written; when a save fails, nothing is deleted, the run
      state is not advanced, and the error propagates.

    Args:
        **kwargs: The arguments of :class:`mmengine.hooks.CheckpointHook`
            (``interval``, ``max_keep_ckpts``, ``save_best``, ``rule``,
            ``out_dir``, ``backend_args``, ...).

    Example:
        >>> default_hooks = dict(
        ...     checkpoint=dict(type='SafeCheckpointHook', interval=1,
        ...                     max_keep_ckpts=3, save_best='accuracy/top1',
        ...                     rule='greater'))
    """

    def before_train(self, runner) -> None:
        out_dir = self.out_dir if self.out_dir is not None \
            else runner.work_dir
        if (self.backend_args is None and self.file_client_args is None
                and _parse_uri_prefix(str(out_dir)) == ''):
            self.backend_args = dict(backend='atomic_local')
        super().before_train(runner)

    def _remove_path(self, path: str) -> None:
        if self.file_backend.isfile(path):
            self.file_backend.remove(path)
        elif self.file_backend.isdir(path):
            # checkpoints saved by DeepSpeed are folders
            self.file_backend.rmtree(path)

    def _save_checkpoint_with_step(self, runner, step, meta):
        hub = runner.message_hub
        old_info = {
            key: hub.runtime_info[key]
            for key in ('keep_ckpt_ids', 'last_ckpt')
            if key in hub.runtime_info
        }
        old_last_ckpt = self.last_ckpt
        dropped: List[int] = []
        keep_ids: Optional[List[int]] = None
        if self.max_keep_ckpts > 0:
            keep_ids = list(self.keep_ckpt_ids)
            # _save_checkpoint and _save_best_checkpoint may both save the
            # same step in one epoch
            if not (keep_ids and keep_ids[-1] == step):
                keep_ids.append(step)
                while len(keep_ids) > self.max_keep_ckpts:
                    dropped.append(keep_ids.pop(0))
            hub.update_info('keep_ckpt_ids', list(keep_ids))

        ckpt_filename = self.filename_tmpl.format(step)
        # Recorded in the checkpoint's own message hub, so set before saving.
        self.last_ckpt = self.file_backend.join_path(self.out_dir,
                                                     ckpt_filename)
        hub.update_info('last_ckpt', self.last_ckpt)
        try:
            runner.save_checkpoint(
                self.out_dir,
                ckpt_filename,
                self.file_client_args,
                save_optimizer=self.save_optimizer,
                save_param_scheduler=self.save_param_scheduler,
                meta=meta,
                by_epoch=self.by_epoch,
                backend_args=self.backend_args,
                **self.args)
        except BaseException:
            self.last_ckpt = old_last_ckpt
            for key in ('keep_ckpt_ids', 'last_ckpt'):
                if key in old_info:
                    hub.update_info(key, old_info[key])
                else:
                    hub.runtime_info.pop(key, None)
            raise
        if keep_ids is not None:
            self.keep_ckpt_ids = deque(keep_ids, self.max_keep_ckpts)

        # Model-parallel runs save shards on every rank; the bookkeeping
        # below is the main process's.
        if not is_main_process():
            return
        # The work directory is local (MMEngine writes this file with open).
        atomic_write(self.last_ckpt, osp.join(runner.work_dir,
                                              'last_checkpoint'))
        for old_step in dropped:
            path = self.file_backend.join_path(
                self.out_dir, self.filename_tmpl.format(old_step))
            if path != self.last_ckpt:
                self._remove_path(path)

    def _save_best_checkpoint(self, runner, metrics) -> None:
        backend = self.file_backend
        deferred = _DeferredRemovals(backend)
        self.file_backend = deferred
        try:
            super()._save_best_checkpoint(runner, metrics)
        finally:
            self.file_backend = backend
        # Reached only when every save succeeded: now drop the old files,
        # never one that was just written under the same name.
        current = {self.last_ckpt, getattr(self, 'best_ckpt_path', None)}
        current.update(getattr(self, 'best_ckpt_path_dict', {}).values())
        for path in deferred.pending:
            if path not in current:
                self._remove_path(path)


@HOOKS.register_module()
class EpochSeedHook(Hook):
    """Seed the random generators at the start of every training epoch.

    Before epoch ``e`` the generators of Python, NumPy and torch in the main
    process are seeded with ``runner.seed + e`` (plus the rank when
    ``randomness.diff_rank_seed`` is set). The random augmentations of an
    epoch then depend only on the seed and the epoch number, so a run that
    is stopped and resumed (``--resume``) draws the same crops and flips as
    an uninterrupted one, and ends with the same weights.

    This covers augmentations that run in the main process
    (``num_workers=0``). Data-loader workers are seeded by MMEngine when they
    start (see ``mmengine.dataset.worker_init_fn``), not per epoch.

    Example:
        >>> custom_hooks = [dict(type='EpochSeedHook')]
    """
    priority = 'VERY_HIGH'

    def before_train_epoch(self, runner) -> None:
        seed = runner.seed + runner.epoch
        randomness = getattr(runner, '_randomness_cfg', None) or {}
        if randomness.get('diff_rank_seed', False):
            seed += runner.rank
        seed %= 2**32
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
