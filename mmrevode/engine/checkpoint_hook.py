"""SafeCheckpointHook: MMEngine's checkpoint hook, saving before it deletes.

MMEngine 0.10 offers no hook point between writing a checkpoint and deleting
the ones it replaces: ``CheckpointHook._save_checkpoint_with_step`` and
``CheckpointHook._save_best_checkpoint`` delete first. The hook below wraps
these two methods, and nothing else of MMEngine's private interface: before
calling them it takes the files due for deletion out of the hook's public
records (``keep_ckpt_ids``, ``best_ckpt_path``, ``best_ckpt_path_dict``),
so MMEngine's code finds nothing to delete, and it deletes them itself once
the new file is written; when a save fails it puts the records back.
``tests/test_engine/test_checkpoint_hook.py`` pins the source of both
methods to MMEngine 0.10.7's, so a change there fails the tests rather than
the guarantee.
"""
import glob
import os
import os.path as osp
import re
from collections import deque
from typing import Dict, List, Optional

from mmengine.dist import broadcast_object_list, is_main_process
from mmengine.hooks import CheckpointHook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS

from .checkpoint import (CheckpointError, atomic_write, checkpoint_dir,
                         find_resume_checkpoint, plain_message_hub)
from .checkpoint_fit import check_checkpoint_fits, first_non_finite
from .divergence import DivergenceError, newest_checkpoint_note
from .resume_state import check_resume_state


def _is_local(path) -> bool:
    """Whether ``path`` names a local file (no ``scheme://`` prefix)."""
    return '://' not in str(path)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _step_pattern(template: str) -> Optional['re.Pattern']:
    """A pattern of the names ``template.format(step)``, the step its group;
    None unless the template has exactly one ``{}``."""
    if template.count('{}') != 1 or template.count('{') != 1:
        return None
    head, tail = template.split('{}')
    return re.compile(re.escape(head) + r'(\d+)' + re.escape(tail))


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
    - writes ``last_checkpoint`` (the absolute path, as MMEngine does)
      atomically, and puts the previous one back when a save fails. In a
      moved or copied work directory, whose pointer names the old folder's
      file, it points it at this folder's file of the same name before
      MMEngine's own resume reads it (``resume=True`` from the config or
      the Runner's arguments; the main process decides and writes, every
      rank gets the outcome); a partial copy without that file is refused
      when the config asks to resume. With ``out_dir`` elsewhere (MMEngine
      saves into ``out_dir/<work_dir's name>``) the pointer is MMEngine's,
      as is a remote one. Outdated or best checkpoints that lie
      outside the output folder (recorded before a move) are never deleted;
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
      checkpoint resumed from (the config's ``load_from``; without one,
      nothing is removed); what it removes is logged;
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
        # a local output folder (the work directory by default) and no
        # backend chosen: all-or-nothing writes
        self.writes_atomically = (
            self.backend_args is None and self.file_client_args is None
            and (self.out_dir is None or _is_local(self.out_dir)))
        if self.writes_atomically:
            self.backend_args = dict(backend='atomic_local')

    def before_run(self, runner) -> None:
        # Before Runner.load_or_resume: MMEngine's own resume (a Runner given
        # resume=True, from its config or its arguments) reads the pointer.
        if not self._saves_in_work_dir(runner):
            return  # checkpoints kept in another folder: MMEngine's pointer
        # the main process decides and writes; every rank gets the outcome
        error = [self._point_at_own_checkpoint(runner)
                 if is_main_process() else None]
        broadcast_object_list(error)
        if error[0] is not None:
            raise CheckpointError(error[0])

    def _saves_in_work_dir(self, runner) -> bool:
        """Whether this hook's checkpoints go to the work directory
        (:func:`checkpoint_dir`)."""
        folder = checkpoint_dir(runner.work_dir, self.out_dir)
        return _is_local(folder) and osp.realpath(folder) == osp.realpath(
            runner.work_dir)

    def _point_at_own_checkpoint(self, runner) -> Optional[str]:
        """Make ``last_checkpoint`` name, absolutely, the file that
        :func:`find_resume_checkpoint` takes (this folder's own file in a
        moved or copied work directory). Returns the message of the error
        to raise, or None: a pointer with no file here is an error only for
        a run that resumes from it (``resume=True`` without
        ``load_from``)."""
        pointer = osp.join(runner.work_dir, 'last_checkpoint')
        try:
            path = find_resume_checkpoint(runner.work_dir, self.out_dir)
        except CheckpointError as error:
            resumes = runner.cfg.get('resume', False) and runner.cfg.get(
                'load_from', None) is None
            return f'resume=True without load_from: {error}' \
                if resumes else None
        if path is None or not _is_local(path):
            return None
        with open(pointer) as f:
            if f.read().strip() == path:
                return None
        try:
            atomic_write(path, pointer)
        except OSError as error:
            return f'Could not point {pointer} at {path}: {error}'
        return None

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        path = runner.cfg.get('load_from', None)
        if path is None and runner.cfg.get('resume', False):
            # MMEngine's own resume read the work directory's pointer
            path = find_resume_checkpoint(runner.work_dir, self.out_dir)
        path = path or 'given as load_from'
        # before Runner.resume hands them to the optimizer and schedulers
        check_resume_state(runner, checkpoint, path)
        if not self.strict_load:
            return
        model = runner.model.module if is_model_wrapper(runner.model) \
            else runner.model
        filename = getattr(runner.cfg, 'filename', None)
        check_checkpoint_fits(
            model, checkpoint, path,
            f'the config {filename}' if filename else 'the config',
            hint=' Check that config and checkpoint belong together; to '
            'load the weights that fit on purpose, pass --partial-load (or '
            'set default_hooks.checkpoint.strict_load=False).')

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        # every save of the run: the hook's own and any other
        bad = first_non_finite(checkpoint.get('state_dict', {}))
        if bad is not None:
            raise DivergenceError(
                f'Not saving a checkpoint at epoch {runner.epoch + 1}, '
                f'iteration {runner.iter + 1}: the weight {bad} is not '
                f'finite (training diverged). '
                f'{newest_checkpoint_note(runner)}')
        # the log buffers as tensors: no class of MMEngine in the file
        plain_message_hub(checkpoint)

    def before_train(self, runner) -> None:
        super().before_train(runner)
        if self.writes_atomically and is_main_process():
            self._remove_stale_temporaries()
            if runner.iter > 0:  # resumed
                self._remove_orphans(runner)
        # paths recorded in a work directory that has since been moved
        self.last_ckpt = self._in_out_dir(self.last_ckpt)
        if getattr(self, 'best_ckpt_path', None):
            self.best_ckpt_path = self._in_out_dir(self.best_ckpt_path)
        for key, path in getattr(self, 'best_ckpt_path_dict', {}).items():
            self.best_ckpt_path_dict[key] = self._in_out_dir(path)

    # -- the two wrapped methods of MMEngine ---------------------------------
    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        """MMEngine's save; the checkpoint that falls out of
        ``max_keep_ckpts`` is deleted after the new one is written, and
        ``last_checkpoint`` is written atomically."""
        hub = runner.message_hub
        saved_info = {
            key: hub.runtime_info[key]
            for key in ('keep_ckpt_ids', 'last_ckpt')
            if key in hub.runtime_info
        }
        last_ckpt = self.last_ckpt
        kept = list(self.keep_ckpt_ids) if self.max_keep_ckpts > 0 else None
        dropped = None
        if kept and len(kept) == self.max_keep_ckpts and kept[-1] != step:
            # MMEngine's method deletes the oldest only from a full record
            dropped = self.keep_ckpt_ids.popleft()
        pointer = osp.join(runner.work_dir, 'last_checkpoint')
        previous_pointer = None
        if is_main_process() and osp.isfile(pointer):
            with open(pointer) as f:
                previous_pointer = f.read()
        try:
            super()._save_checkpoint_with_step(runner, step, meta)
            if is_main_process():
                # the path MMEngine wrote (absolute), again, all or nothing
                atomic_write(
                    osp.abspath(self.last_ckpt)
                    if _is_local(self.last_ckpt) else self.last_ckpt,
                    pointer)
        except BaseException:
            self.last_ckpt = last_ckpt
            if kept is not None:
                self.keep_ckpt_ids = deque(kept, self.max_keep_ckpts)
            _restore_info(hub, ('keep_ckpt_ids', 'last_ckpt'), saved_info)
            if previous_pointer:
                # MMEngine's own write of the pointer may have truncated it
                try:
                    atomic_write(previous_pointer, pointer)
                except OSError:
                    pass  # the save's own error is the one to report
            raise
        if not is_main_process():
            return
        if dropped is not None:
            path = self.file_backend.join_path(
                self.out_dir, self.filename_tmpl.format(dropped))
            if path != self.last_ckpt:
                self._remove_path(path)

    def _save_best_checkpoint(self, runner, metrics) -> None:
        """MMEngine's save of the best checkpoint(s); the previous best is
        deleted after the new one is written."""
        if not self.save_best:
            return
        hub = runner.message_hub
        best_keys = [k for k in hub.runtime_info if k.startswith('best_')]
        saved_info = {key: hub.runtime_info[key] for key in best_keys}
        previous = self._best_paths()
        # MMEngine's method deletes the previous best it finds recorded
        self._set_best_paths({key: None for key in previous})
        try:
            super()._save_best_checkpoint(runner, metrics)
        except BaseException:
            self._set_best_paths(previous)
            # the keys the failed save added go too
            added = [k for k in hub.runtime_info if k.startswith('best_')]
            _restore_info(hub, set(best_keys) | set(added), saved_info)
            raise
        current = self._best_paths()
        self._set_best_paths({
            key: path if path is not None else previous.get(key)
            for key, path in current.items()
        })
        if not is_main_process():
            return
        keep = {self.last_ckpt, *self._best_paths().values()}
        for path in previous.values():
            # never a file outside the output folder (one recorded before
            # the work directory was moved)
            if path and path not in keep and \
                    osp.dirname(path) == self.out_dir and self._remove_path(
                        path):
                runner.logger.info(
                    f'The previous best checkpoint {path} is removed')

    # -- helpers -------------------------------------------------------------
    def _best_paths(self) -> Dict[Optional[str], Optional[str]]:
        """The recorded best checkpoints: ``{None: path}`` for one metric,
        ``{metric: path}`` for several."""
        paths = getattr(self, 'best_ckpt_path_dict', None)
        if len(self.key_indicators) > 1 and paths is not None:
            return dict(paths)
        return {None: getattr(self, 'best_ckpt_path', None)}

    def _set_best_paths(self, paths: Dict[Optional[str],
                                          Optional[str]]) -> None:
        for key, path in paths.items():
            if key is None:
                self.best_ckpt_path = path
            else:
                self.best_ckpt_path_dict[key] = path

    def _remove_path(self, path: str) -> bool:
        """Delete a checkpoint file (or a DeepSpeed checkpoint folder);
        whether there was one."""
        if self.file_backend.isfile(path):
            self.file_backend.remove(path)
        elif self.file_backend.isdir(path):
            self.file_backend.rmtree(path)
        else:
            return False
        return True

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
        the checkpoint resumed from (``load_from`` of the config; nothing is
        removed when it is unknown), nor regular checkpoints of later steps
        (left by a run resumed from an earlier checkpoint; saving that step
        again replaces them and puts them back in the rotation).
        """
        pattern = _step_pattern(self.filename_tmpl)
        resumed_from = runner.cfg.get('load_from', None)
        if pattern is None or not resumed_from or not osp.isdir(
                self.out_dir):
            return
        step = runner.epoch if self.by_epoch else runner.iter
        hub = runner.message_hub.runtime_info
        protected = {
            osp.realpath(p)
            for p in (resumed_from, hub.get('last_ckpt'), self.last_ckpt)
            if p
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


def _restore_info(hub, keys, saved: dict) -> None:
    """Put the message hub's ``keys`` back to ``saved`` (absent if not
    there)."""
    for key in keys:
        if key in saved:
            hub.update_info(key, saved[key])
        else:
            hub.runtime_info.pop(key, None)
