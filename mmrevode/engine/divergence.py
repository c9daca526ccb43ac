"""Stopping (or skipping a step) when training diverges."""
import math
from typing import Optional

import torch
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.optim import AmpOptimWrapper
from mmengine.registry import HOOKS

from .optim_wrapper import GuardedOptimWrapper


class DivergenceError(RuntimeError):
    """Training produced a non-finite loss, gradient or weight."""


def newest_checkpoint_note(runner) -> str:
    """A sentence naming the newest checkpoint of the run (the message hub's
    ``last_ckpt``), or saying that none was saved."""
    path = runner.message_hub.get_info('last_ckpt')
    return (f'The newest checkpoint (finite weights) is {path}.'
            if path else 'No checkpoint was saved before.')


def _remedy(runner) -> str:
    """The command-line options that continue with a lower learning rate."""
    path = runner.message_hub.get_info('last_ckpt')
    optimizer = (runner.cfg.get('optim_wrapper', None) or {}).get(
        'optimizer', None) or {}
    base = optimizer.get('lr') if isinstance(optimizer, dict) else None
    below = f', LR below the base learning rate {base:g}' if isinstance(
        base, (int, float)) else ''
    option = f'--cfg-options optim_wrapper.optimizer.lr=LR{below}'
    if not path:
        return f'Train again with a lower learning rate ({option})'
    return (f'Resume from it with a lower learning rate (--resume {path} '
            f'{option}: the new base value, over the checkpoint\'s; its '
            'schedule goes on from there)')


@HOOKS.register_module()
class DivergenceHook(Hook):
    """Stop training, or skip the step, at a non-finite loss or gradient.

    With :class:`~mmrevode.engine.GuardedOptimWrapper` (the configs'
    ``optim_wrapper``) a step whose gradients have a non-finite total norm
    (a NaN or infinite loss gives one) is not applied, so the weights stay
    finite; this hook reads that from the wrapper. After the iteration, with
    ``action='stop'``, :class:`DivergenceError` ends the run with the
    iteration, the loss, the gradient norm and the newest checkpoint (whose
    weights are finite: :class:`SafeCheckpointHook` saves no others);
    ``tools/train.py`` prints it and exits with status 1. With
    ``action='skip'`` the step is skipped with a warning and training goes
    on; more than ``max_skips`` skips in a row stop the run all the same.

    With ``AmpOptimWrapper`` the gradients are not checked (its loss scaler
    skips steps with infinite gradients by design); the loss still is. With
    another wrapper only the loss is checked, and a warning says so.

    Args:
        action (str): ``'stop'`` or ``'skip'``. Defaults to ``'stop'``.
        max_skips (int): With ``action='skip'``, the most steps in a row
            that may be skipped. Defaults to 10.

    Example:
        >>> custom_hooks = [dict(type='DivergenceHook', action='stop')]
    """
    # before the logger and checkpoint hooks see the iteration
    priority = 'ABOVE_NORMAL'
    ACTIONS = ('stop', 'skip')

    def __init__(self, action: str = 'stop', max_skips: int = 10):
        if action not in self.ACTIONS:
            raise ValueError(f'DivergenceHook: action must be one of '
                             f'{self.ACTIONS}, got {action!r}.')
        if not isinstance(max_skips, int) or max_skips < 0:
            raise ValueError('DivergenceHook: max_skips must be an int >= 0, '
                             f'got {max_skips!r}.')
        self.action = action
        self.max_skips = max_skips
        self._skips = 0

    def before_train(self, runner) -> None:
        wrappers = runner.optim_wrapper
        wrappers = list(wrappers.values()) if hasattr(wrappers, 'values') \
            else [wrappers]
        self._wrappers = [
            w for w in wrappers if isinstance(w, GuardedOptimWrapper)
        ]
        unguarded = [
            type(w).__name__ for w in wrappers
            if not isinstance(w, (GuardedOptimWrapper, AmpOptimWrapper))
        ]
        if unguarded:
            print_log(
                f'DivergenceHook: the optimizer wrapper {unguarded[0]} '
                'applies steps with non-finite gradients; only the loss is '
                "checked. Set optim_wrapper = dict(type='GuardedOptimWrapper'"
                ', ...) to skip such steps.',
                logger='current',
                level=30)

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        loss = (outputs or {}).get('loss')
        if isinstance(loss, torch.Tensor):
            loss = loss.detach().item()
        loss = float(loss) if loss is not None else None
        norms = [w.pop_skipped_grad_norm()
                 for w in getattr(self, '_wrappers', [])]
        grad_norm = next((n for n in norms if n is not None), None)
        if grad_norm is None and (loss is None or math.isfinite(loss)):
            self._skips = 0
            return
        where = f'iteration {runner.iter + 1} (epoch {runner.epoch + 1})'
        values = f'loss = {loss}' + (f', gradient norm = {grad_norm}'
                                     if grad_norm is not None else '')
        applied = ('the step was not applied' if grad_norm is not None else
                   'the step was applied')
        self._skips += 1
        if self.action == 'skip' and self._skips <= self.max_skips:
            print_log(f'Skipped the step of {where}: {values}.',
                      logger='current', level=30)
            return
        reason = (f'{self._skips} steps in a row had to be skipped'
                  if self.action == 'skip' else 'training diverged')
        raise DivergenceError(
            f'Stopped at {where}: {values} ({reason}; {applied}). '
            f'{newest_checkpoint_note(runner)} {_remedy(runner)}, or skip '
            "such steps with custom_hooks=[dict(type='DivergenceHook', "
            "action='skip')].")
