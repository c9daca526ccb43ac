"""Hooks: safe checkpoints, a stop at divergence, per-epoch seeding."""
import glob
import math
import os
import os.path as osp
import random
import re
from collections import deque
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.dist import get_rank, is_main_process
from mmengine.fileio.io import _parse_uri_prefix
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.optim import AmpOptimWrapper
from mmengine.registry import FUNCTIONS, HOOKS

from .checkpoint import (CheckpointError, atomic_write,
                         find_resume_checkpoint, plain_message_hub)
from .definition import DEFINITION_KEY, definition_error
from .optim_wrapper import GuardedOptimWrapper
from .resume_state import check_resume_state


class DivergenceError(RuntimeError):
    """Training produced a non-finite loss, gradient or weight."""


class CheckpointMismatchError(CheckpointError):
    """A checkpoint's weights do not fit the model they are loaded into."""


def first_non_finite(state_dict: Dict[str, torch.Tensor]) -> Optional[str]:
    """The name of the first floating tensor with a NaN or infinity."""
    for name, value in state_dict.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() \
                and not bool(torch.isfinite(value).all()):
            return name
    return None


def _newest_checkpoint(runner) -> str:
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


def _unwrap(model):
    return model.module if is_model_wrapper(model) else model


def _config_name(runner) -> str:
    filename = getattr(runner.cfg, 'filename', None)
    return f'the config {filename}' if filename else 'the config'


def checkpoint_mismatches(model: torch.nn.Module,
                          checkpoint: dict,
                          limit: int = 5,
                          optional: Sequence[str] = (),
                          check_definitions: bool = True) -> List[str]:
    """What keeps a checkpoint's weights from fitting ``model``.

    Compares ``checkpoint['state_dict']`` (or the checkpoint itself), with
    a ``module.`` prefix stripped as MMEngine does, against
    ``model.state_dict()``. A backbone whose recorded definition (step
    size, arch, ...) differs from the network built, or which records
    none, is reported first and alone, with the message its loading would
    raise (:func:`~mmrevode.engine.definition.definition_error`): a
    different network explains all other differences.

    Args:
        model (nn.Module): The model to load into.
        checkpoint (dict): The loaded checkpoint.
        limit (int): How many keys to name per kind of mismatch.
            Defaults to 5.
        optional (Sequence[str]): Prefixes of keys that may be missing or
            unexpected (e.g. ``'out_norms.'`` for a backbone that returns
            other outputs). Defaults to ().
        check_definitions (bool): Compare the backbones' definitions.
            Defaults to True.

    Returns:
        list[str]: One phrase per kind of problem (a different network, no
        weights, missing, unexpected or different-shape keys, non-finite
        values); empty if the weights fit.
    """
    state = checkpoint.get('state_dict', checkpoint) \
        if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not any(
            isinstance(v, torch.Tensor) for v in state.values()):
        return ['it holds no weights']
    if not all(isinstance(k, str) for k in state):
        return ['its weights are named by something else than strings']
    state = {re.sub(r'^module\.', '', k): v for k, v in state.items()}
    optional = tuple(optional)
    if check_definitions:
        error = definition_error(model, state)
        if error is not None:
            return [str(error)]
    expected = model.state_dict()
    # definitions are compared above (or on purpose not at all)
    defined = {k for k in expected if k.endswith(DEFINITION_KEY)}
    problems = []
    missing = [
        k for k in expected
        if k not in state and k not in defined and not k.startswith(optional)
    ]
    unexpected = [
        k for k in state if k not in expected and not k.startswith(optional)
    ]
    # torch skips a value that is not a tensor and MMEngine only logs it:
    # the model would keep its initial weights there
    not_tensors = [
        f'{k} ({type(state[k]).__name__})' for k in expected
        if k in state and not isinstance(state[k], torch.Tensor)
    ]
    shapes = [
        f'{k} {tuple(state[k].shape)} vs {tuple(v.shape)} in the model'
        for k, v in expected.items()
        if k not in defined and isinstance(v, torch.Tensor) and isinstance(
            state.get(k), torch.Tensor) and state[k].shape != v.shape
    ]
    for label, keys in (('missing keys', missing),
                        ('values that are not tensors', not_tensors),
                        ('unexpected keys', unexpected),
                        ('different shapes', shapes)):
        if keys:
            problems.append(f'{len(keys)} {label} ({_listing(keys, limit)})')
    bad = first_non_finite(state)
    if bad is not None:
        problems.append(f'non-finite values in {bad} (a diverged run)')
    return problems


def check_checkpoint_fits(model: torch.nn.Module,
                          checkpoint: dict,
                          path: str,
                          config: str = 'the config',
                          hint: str = '',
                          optional: Sequence[str] = (),
                          check_definitions: bool = True) -> None:
    """Raise :class:`CheckpointMismatchError` naming ``path``, ``config``
    and the :func:`checkpoint_mismatches` unless the weights fit ``model``.

    A backbone whose definition differs, or is not recorded, raises
    :class:`~mmrevode.engine.NetworkMismatchError` (or
    :class:`~mmrevode.engine.MissingDefinitionError`) first, with the
    message loading would give.
    """
    if check_definitions and isinstance(checkpoint, dict):
        state = checkpoint.get('state_dict', checkpoint)
        if isinstance(state, dict):
            error = definition_error(
                model, {re.sub(r'^module\.', '', k): v
                        for k, v in state.items()}, path)
            if error is not None:
                raise error
    problems = checkpoint_mismatches(
        model, checkpoint, optional=optional, check_definitions=False)
    if problems:
        raise CheckpointMismatchError(
            f'The checkpoint {path} does not fit the model of {config}: ' +
            '; '.join(problems) + '.' + hint)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _listing(items: List[str], limit: int = 5) -> str:
    shown = ', '.join(items[:limit])
    return shown + (f' and {len(items) - limit} more'
                    if len(items) > limit else '')


def _step_pattern(template: str) -> Optional['re.Pattern']:
    """A pattern of the names ``template.format(step)``, the step its group;
    None unless the template has exactly one ``{}``."""
    if template.count('{}') != 1 or template.count('{') != 1:
        return None
    head, tail = template.split('{}')
    return re.compile(re.escape(head) + r'(\d+)' + re.escape(tail))


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
      state is not advanced, and the error propagates;
    - never saves weights that are not finite: it raises
      :class:`DivergenceError` instead, so every kept checkpoint (the
      ``best_*`` one too) holds finite weights;
    - writes ``last_checkpoint`` relative to the work directory and, for
      ``resume=True`` without a path, resumes from the work directory's own
      file (:func:`find_resume_checkpoint`), so a moved work directory
      resumes from its own checkpoints; outdated or best checkpoints that
      lie outside the output folder (recorded before a move) are never
      deleted;
    - removes the temporary files of saves that a killed process left;
    - writes the message hub's log buffers as tensors
      (:func:`plain_message_hub`), so its checkpoints hold no class of
      MMEngine (tensors, containers and a few NumPy scalars);
    - checks the optimizer and parameter-scheduler states a resumed
      checkpoint restores against those the config built
      (:func:`~mmrevode.engine.resume_state.check_resume_state`): MMEngine
      would copy any attribute the file names into the schedulers;
    - when a run is resumed, removes (main process only, in the output
      folder only, files of its own naming only) the checkpoints that a
      killed run left outside the rotation: ``epoch_N.pth`` / ``iter_N.pth``
      older than the resumed step that ``max_keep_ckpts`` no longer keeps,
      and ``best_*`` files other than the current best; never the
      checkpoint resumed from; what it removes is logged;
    - checks every checkpoint loaded by ``load_from`` or ``resume`` (and so
      by ``tools/test.py``): a backbone trained as another network (its
      recorded definition differs, e.g. another ``h``) raises
      :class:`~mmrevode.engine.NetworkMismatchError`, one without a recorded
      definition :class:`~mmrevode.engine.MissingDefinitionError`; weights
      that do not fit the model (missing, unexpected or different-shape
      keys, or no weights at all) or are not finite raise
      :class:`CheckpointMismatchError`, unless ``strict_load=False``. (The
      definition is checked again when the weights are loaded, whatever
      ``strict_load``: the backbone's ``check_definition=False`` is the
      override.)

    Args:
        strict_load (bool): Refuse checkpoints whose weights do not fit the
            model. False loads what fits and logs the rest, as MMEngine
            does. Defaults to True.
        **kwargs: The arguments of :class:`mmengine.hooks.CheckpointHook`
            (``interval``, ``max_keep_ckpts``, ``save_best``, ``rule``,
            ``out_dir``, ``backend_args``, ...).

    Example:
        >>> default_hooks = dict(
        ...     checkpoint=dict(type='SafeCheckpointHook', interval=1,
        ...                     max_keep_ckpts=3, save_best='accuracy/top1',
        ...                     rule='greater'))
    """

    def __init__(self, *args, strict_load: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.strict_load = strict_load

    def before_run(self, runner) -> None:
        # resume=True without a path: MMEngine would read last_checkpoint as
        # a path relative to the current directory.
        if getattr(runner, '_resume', False) and \
                getattr(runner, '_load_from', None) is None:
            runner._load_from = find_resume_checkpoint(runner.work_dir)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        # before Runner.resume hands them to the optimizer and schedulers
        check_resume_state(runner, checkpoint,
                           getattr(runner, '_load_from', None) or '')
        if not self.strict_load:
            return
        check_checkpoint_fits(
            _unwrap(runner.model), checkpoint,
            getattr(runner, '_load_from', None) or '', _config_name(runner),
            hint=' Check that config and checkpoint belong together; to '
            'load the weights that fit on purpose, pass --partial-load (or '
            'set default_hooks.checkpoint.strict_load=False).')

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        # the log buffers as tensors: no class of MMEngine in the file
        plain_message_hub(checkpoint)

    def before_train(self, runner) -> None:
        out_dir = self.out_dir if self.out_dir is not None \
            else runner.work_dir
        local = _parse_uri_prefix(str(out_dir)) == ''
        if (self.backend_args is None and self.file_client_args is None
                and local):
            self.backend_args = dict(backend='atomic_local')
        super().before_train(runner)
        if local and is_main_process():
            self._remove_stale_temporaries()
            if runner.iter > 0:  # resumed
                self._remove_orphans(runner)
        # paths recorded in a work directory that has since been moved
        self.last_ckpt = self._in_out_dir(getattr(self, 'last_ckpt', None))
        if getattr(self, 'best_ckpt_path', None):
            self.best_ckpt_path = self._in_out_dir(self.best_ckpt_path)
        for key, path in getattr(self, 'best_ckpt_path_dict', {}).items():
            self.best_ckpt_path_dict[key] = self._in_out_dir(path)

    def _in_out_dir(self, path: Optional[str]) -> Optional[str]:
        if not path or osp.dirname(path) == self.out_dir:
            return path
        return self.file_backend.join_path(self.out_dir, osp.basename(path))

    def _remove_stale_temporaries(self) -> None:
        """Remove what saves of killed processes left (``.NAME.PID.tmp``)."""
        for path in glob.glob(osp.join(self.out_dir, '.*.tmp')):
            found = re.fullmatch(r'\..+\.(\d+)\.tmp', osp.basename(path))
            if found and not _pid_alive(int(found.group(1))):
                os.remove(path)

    def _remove_orphans(self, runner) -> None:
        """Remove what a killed run left beyond the rotation, on resume.

        A run killed between writing a new checkpoint and deleting the one
        that falls out of ``max_keep_ckpts`` (or the previous best) leaves
        a file that the rotation never deletes: the resumed run's record of
        kept checkpoints (``keep_ckpt_ids``, ``best_ckpt`` in the message
        hub) no longer names it; so does a best checkpoint saved after the
        checkpoint a run is resumed from. Removed here, in the output folder
        only, and only files of this hook's naming (``filename_tmpl``,
        ``best_<metric>_<filename_tmpl>``): regular checkpoints older than
        the resumed step that are not among the kept ones, and best
        checkpoints other than the current best of the message hub. Never
        the checkpoint resumed from, nor regular checkpoints of later steps
        (left by a run resumed from an earlier checkpoint; saving that step
        again replaces them and puts them back in the rotation).
        """
        pattern = _step_pattern(self.filename_tmpl)
        if pattern is None or not osp.isdir(self.out_dir):
            return
        step = runner.epoch if self.by_epoch else runner.iter
        hub = runner.message_hub.runtime_info
        protected = {
            osp.realpath(p)
            for p in (getattr(runner, '_load_from', None),
                      hub.get('last_ckpt'), self.last_ckpt) if p
        }
        keep = set(self.keep_ckpt_ids) if self.max_keep_ckpts > 0 and \
            'keep_ckpt_ids' in hub else None
        best = self._best_patterns(hub)
        removed, later = [], []
        for name in sorted(os.listdir(self.out_dir)):
            path = osp.join(self.out_dir, name)
            if not osp.isfile(path) or osp.realpath(path) in protected:
                continue
            found = pattern.fullmatch(name)
            if found and keep is not None:
                if int(found.group(1)) > step:
                    later.append(name)
                elif int(found.group(1)) < step and \
                        int(found.group(1)) not in keep:
                    removed.append(name)
                continue
            if any(pattern.fullmatch(name) and osp.realpath(path) != current
                   for pattern, current in best):
                removed.append(name)
        for name in removed:
            os.remove(osp.join(self.out_dir, name))
        if removed:
            rules = [f'max_keep_ckpts={self.max_keep_ckpts}']
            if self.save_best:
                rules.append(f'best by {", ".join(self.key_indicators)}')
            runner.logger.info(
                f'Removed {len(removed)} checkpoint(s) that a stopped run '
                f'left outside the rotation ({", ".join(rules)}): '
                f'{", ".join(removed)}.')
        if later:
            runner.logger.info(
                f'Left {", ".join(later)} in {self.out_dir}: newer than the '
                f'resumed step {step}; saving that step again replaces it.')

    def _best_patterns(self, hub: dict) -> List[tuple]:
        """``(pattern, current best path)`` per metric of ``save_best``."""
        if not self.save_best:
            return []
        template = f'best_{{}}_{self.filename_tmpl}'
        patterns = []
        for key in self.key_indicators:
            current = hub.get('best_ckpt' if len(self.key_indicators) == 1
                              else f'best_ckpt_{key}')
            if key == 'auto':
                # the metric is known once a best checkpoint was saved
                found = re.fullmatch(
                    r'best_(.+)_' + _step_pattern(
                        self.filename_tmpl).pattern, osp.basename(
                            current)) if current else None
                if found is None:
                    continue
                key = found.group(1)
            name = template.replace('{}', key.replace('/', '_'), 1)
            pattern = _step_pattern(name)
            if pattern is not None:
                patterns.append((pattern, osp.realpath(
                    self._in_out_dir(current)) if current else None))
        return patterns

    def _check_finite(self, runner) -> None:
        model = _unwrap(runner.model)
        bad = first_non_finite(model.state_dict())
        if bad is not None:
            raise DivergenceError(
                f'Not saving a checkpoint at epoch {runner.epoch + 1}, '
                f'iteration {runner.iter + 1}: the weight {bad} is not '
                f'finite (training diverged). {_newest_checkpoint(runner)}')

    def _remove_path(self, path: str) -> None:
        if self.file_backend.isfile(path):
            self.file_backend.remove(path)
        elif self.file_backend.isdir(path):
            # checkpoints saved by DeepSpeed are folders
            self.file_backend.rmtree(path)

    def _save_checkpoint_with_step(self, runner, step, meta):
        self._check_finite(runner)
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
        # A checkpoint inside it is named relative to it.
        pointer = self.last_ckpt
        if _parse_uri_prefix(str(pointer)) == '':
            relative = osp.relpath(pointer, runner.work_dir)
            if not relative.startswith(os.pardir):
                pointer = relative
        atomic_write(pointer, osp.join(runner.work_dir, 'last_checkpoint'))
        for old_step in dropped:
            path = self.file_backend.join_path(
                self.out_dir, self.filename_tmpl.format(old_step))
            if path != self.last_ckpt:
                self._remove_path(path)

    def _save_best_checkpoint(self, runner, metrics) -> None:
        if self.save_best is None:
            return
        self._check_finite(runner)
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
            # never a file outside the output folder (one recorded before
            # the work directory was moved)
            if path not in current and \
                    osp.dirname(path) == self.out_dir:
                self._remove_path(path)


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
            f'{_newest_checkpoint(runner)} {_remedy(runner)}, or skip such '
            "steps with custom_hooks=[dict(type='DivergenceHook', "
            "action='skip')].")


@FUNCTIONS.register_module()
def seed_worker_by_epoch(worker_id: int) -> None:
    """Seed a data-loader worker from (seed, epoch, worker, rank).

    The ``worker_init_fn`` of the configs' data loaders, in place of
    MMEngine's, which seeds every worker with ``seed + worker_id`` (plus the
    rank) whatever the epoch. Torch has already seeded the worker with
    ``base_seed + worker_id``, where ``base_seed`` is drawn from the main
    process's generator when the epoch's iterator starts; with
    :class:`EpochSeedHook` that generator is seeded from (seed, epoch). This
    function seeds Python's, NumPy's and torch's generators of the worker
    from that and the rank, so the augmentations a worker draws are a
    function of (seed, epoch, worker, rank), the same in a resumed run.
    Needs ``persistent_workers=False`` (persistent workers keep their state
    across epochs).

    Args:
        worker_id (int): The worker's index (unused: part of torch's seed).
    """
    state = np.random.SeedSequence([torch.initial_seed(),
                                    get_rank()]).generate_state(2)
    seed = int(state[0]) << 32 | int(state[1])
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@HOOKS.register_module()
class EpochSeedHook(Hook):
    """Seed the random generators at the start of every training epoch.

    Before epoch ``e`` the generators of Python, NumPy and torch in the main
    process are seeded with ``runner.seed + e`` (plus the rank when
    ``randomness.diff_rank_seed`` is set). The random augmentations of an
    epoch then depend only on the seed and the epoch number, so a run that
    is stopped and resumed (``--resume``) draws the same crops and flips as
    an uninterrupted one, and ends with the same weights.

    Data-loader workers draw their seeds from the generator seeded here
    when the epoch's iterator starts; with ``worker_init_fn=dict(
    type='seed_worker_by_epoch')`` and ``persistent_workers=False`` (as in the
    configs) their augmentations depend only on (seed, epoch, worker, rank)
    too.

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
