"""Plugins that the tools-level distributed test imports into its runs
(``custom_imports``; this directory is on their ``PYTHONPATH``).

- ``RankStateHook`` saves every rank's model state at the end of training
  (the Runner's checkpoints come from rank 0 only);
- ``GlooSyncBN``: :class:`dist_utils.GlooSyncBatchNorm` as a norm type, the
  CPU stand-in for ``norm_cfg=dict(type='SyncBN')``.
"""
import os.path as osp

import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS, MODELS

from dist_utils import GlooSyncBatchNorm

MODELS.register_module('GlooSyncBN', module=GlooSyncBatchNorm, force=True)


@HOOKS.register_module(force=True)
class RankStateHook(Hook):
    """Save ``rank{RANK}.pth`` (the bare model's state dict) in the work
    directory after training."""

    def after_train(self, runner):
        model = runner.model
        model = getattr(model, 'module', model)
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        torch.save(state, osp.join(runner.work_dir, f'rank{runner.rank}.pth'))
