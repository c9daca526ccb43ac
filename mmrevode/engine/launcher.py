"""Running a config: work dir, resume, lock, Runner, one-line errors.

``tools/train.py``, ``tools/test.py`` and their detection twins in
``tools/det/`` are thin: they declare their arguments
(:mod:`mmrevode.engine.options`) and call

- :func:`load_config`, which turns a missing config file into a
  :class:`LaunchError`;
- :func:`configure`, which merges the checked ``--cfg-options`` and the
  common arguments;
- :func:`train` (locks the work directory, :class:`WorkDirLock`, and
  resolves ``--resume``) or :func:`build_runner`, which set up CPU DDP and
  build the Runner;
- :func:`run_cli`, which prints the errors a user can fix (bad config or
  option, missing data, unusable checkpoint, divergence, a busy work
  directory) as one message and returns exit status 1, with no traceback.
"""
import difflib
import fcntl
import os
import os.path as osp
import socket
import sys
import time
from copy import deepcopy
from typing import Callable, Iterable, Optional

import torch
from mmengine.config import Config, ConfigDict
from mmengine.registry import RUNNERS, init_default_scope
from mmengine.runner import Runner

from ..datasets import DatasetError
from ..models.reversible.fixed_point import FixedPointRangeError
from .checkpoint import (CheckpointError, CorruptCheckpointError,
                         find_resume_checkpoint, load_from_local,
                         trust_checkpoints)
from .compile import use_compile_hook
from .dist import setup_distributed
from .divergence import DivergenceError
from .options import LaunchError, merge_cfg_options
from .rebuild_check import RebuildMismatchError
from .resume import ResumeError, plan_resume_options, resume_hook_config
from .run_info import RunInfo


class WorkDirBusyError(LaunchError):
    """Another run holds the work directory."""


#: Errors that :func:`run_cli` prints without a traceback.
USER_ERRORS = (LaunchError, DatasetError, CheckpointError, DivergenceError,
               ResumeError, FixedPointRangeError, RebuildMismatchError)


def load_config(path: str) -> Config:
    """Read a config file; a missing one is a :class:`LaunchError`."""
    if not osp.isfile(path):
        near = difflib.get_close_matches(
            osp.basename(path),
            os.listdir(osp.dirname(path) or '.')
            if osp.isdir(osp.dirname(path) or '.') else [],
            n=3)
        hint = f' Did you mean {", ".join(near)}?' if near else ''
        raise LaunchError(f'The config {path} does not exist.{hint}')
    return Config.fromfile(path)


def apply_common_arguments(cfg: Config, args) -> None:
    """Launcher, work dir (argument > config > ./work_dirs/<config name>),
    checkpoint trust and strictness."""
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    if getattr(args, 'trust_checkpoint', False):
        trust_checkpoints()
    hooks = cfg.get('default_hooks') or {}
    checkpoint_hook = hooks.get('checkpoint')
    if isinstance(checkpoint_hook, dict) and checkpoint_hook.get(
            'type') in ('CheckpointHook', 'mmengine.CheckpointHook'):
        # the same arguments, with safe saves and checked loads
        checkpoint_hook['type'] = 'SafeCheckpointHook'
    if isinstance(checkpoint_hook, dict) and getattr(args, 'partial_load',
                                                     False):
        checkpoint_hook['strict_load'] = False


def apply_dataloader_defaults(cfg: Config, fields: Iterable[str],
                              args) -> None:
    """Defaults of MMPretrain's tools that suit this machine and config:
    pinned memory only with a GPU, persistent workers only with workers,
    ``default_collate``; a config's own values win, except where
    ``--no-pin-memory`` / ``--no-persistent-workers`` say otherwise."""
    for field in fields:
        if cfg.get(field, None) is None:
            continue
        loader = deepcopy(cfg[field])
        workers = loader.get('num_workers', 0)
        loader.setdefault('pin_memory', torch.cuda.is_available())
        loader.setdefault('persistent_workers', workers > 0)
        loader.setdefault('collate_fn', dict(type='default_collate'))
        if getattr(args, 'no_pin_memory', False):
            loader['pin_memory'] = False
        if getattr(args, 'no_persistent_workers', False) or workers == 0:
            loader['persistent_workers'] = False
        cfg[field] = loader


def resolve_resume(cfg: Config,
                   resume: Optional[str],
                   cfg_options: Optional[dict] = None) -> Optional[str]:
    """Resolve the resume of a run, in one place: which checkpoint, which
    seed, and what becomes of ``--cfg-options`` that the checkpoint's state
    would override.

    The checkpoint: ``--resume PATH``; ``--resume`` without a path, or
    ``resume=True`` in the config (or ``--cfg-options resume=True``), the
    work directory's ``last_checkpoint`` (:func:`find_resume_checkpoint`),
    or ``load_from`` if the config sets it with ``resume=True``. When the
    config draws a random seed (``randomness.seed=None``), the checkpoint's
    seed is used, so that the data order and augmentations of the resumed
    epochs are those of an uninterrupted run.

    ``cfg_options`` that ``Runner.resume`` would silently replace by the
    checkpoint's state are either applied over it (optimizer
    hyper-parameters such as ``optim_wrapper.optimizer.lr``, scheduler
    arguments such as ``param_scheduler.milestones``; through
    :class:`~mmrevode.engine.resume.ResumeOptionsHook`, added to
    ``custom_hooks``) or refused (a seed other than the checkpoint's,
    another optimizer type, ...; see
    :func:`~mmrevode.engine.resume.plan_resume_options`).

    Args:
        cfg (Config): The run's config, changed in place (``resume``,
            ``load_from``, ``randomness.seed``, ``custom_hooks``).
        resume (str, optional): ``--resume``: a path, ``'auto'`` (no path)
            or None (not given).
        cfg_options (dict, optional): The parsed ``--cfg-options``.

    Returns:
        str | None: The checkpoint resumed from, or None for a new run (or
        ``--resume`` in a work directory that has no checkpoint yet).

    Raises:
        ResumeError: An option that a resumed run cannot take.
    """
    if resume is None and cfg.get('resume', False):
        resume = cfg.get('load_from', None) or 'auto'
    if resume is None:
        return None
    out_dir = ((cfg.get('default_hooks', None) or {}).get('checkpoint', None)
               or {}).get('out_dir', None)
    path = find_resume_checkpoint(cfg.work_dir, out_dir) \
        if resume == 'auto' else resume
    # resolved here: the Runner never searches for a checkpoint itself
    cfg.resume = path is not None
    cfg.load_from = path
    if path is None:
        return None
    randomness = cfg.setdefault('randomness', ConfigDict(seed=None))
    options = {k.lstrip('+'): v for k, v in (cfg_options or {}).items()}
    meta = None
    if randomness.get('seed') is None or 'randomness.seed' in options:
        meta = checkpoint_meta(path)
    if randomness.get('seed') is None and 'randomness.seed' not in options:
        seed = meta.get('seed')
        if seed is not None:
            randomness['seed'] = seed
    plan = plan_resume_options(options, cfg,
                               meta.get('seed') if meta else None, path)
    hook = resume_hook_config(plan)
    if hook is not None:
        cfg.custom_hooks = list(cfg.get('custom_hooks', None) or []) + [hook]
    return path


def checkpoint_meta(path: str) -> dict:
    """The ``meta`` dict of the checkpoint at ``path`` (read safely).

    Raises:
        CorruptCheckpointError: The checkpoint is not a dict, its ``meta`` is
            not a dict, or its ``seed`` is not an int.
    """
    checkpoint = load_from_local(path, map_location='cpu')
    meta = checkpoint.get('meta', {}) if isinstance(checkpoint, dict) \
        else None
    seed = meta.get('seed') if isinstance(meta, dict) else None
    if not isinstance(meta, dict) or not (
            seed is None or type(seed) is int and 0 <= seed < 2**32):
        raise CorruptCheckpointError(
            f'The checkpoint {path} cannot be resumed: it is not a dict with '
            'a meta dict (and an int seed) as the Runner saves it.')
    return meta


class WorkDirLock:
    """One run per work directory.

    ``acquire`` takes an exclusive ``flock`` on ``<work_dir>/.lock`` and
    writes the holder (process id, host, start time, command) into it; a
    second run fails at once with :class:`WorkDirBusyError` naming the
    holder. The kernel drops the lock when its process ends, so the lock of
    a killed run is simply taken over.

    Args:
        work_dir (str): The work directory (created if missing).
    """

    def __init__(self, work_dir: str):
        self.work_dir = work_dir
        self.path = osp.join(work_dir, '.lock')
        self._fd: Optional[int] = None

    def acquire(self) -> 'WorkDirLock':
        os.makedirs(self.work_dir, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 4096).decode(errors='replace').strip()
            os.close(fd)
            raise WorkDirBusyError(
                f'The work directory {self.work_dir} is in use by another '
                f'run ({holder or "unknown process"}). Wait for it to end, '
                'or choose another --work-dir.') from None
        os.ftruncate(fd, 0)
        os.write(
            fd, (f'process {os.getpid()} on {socket.gethostname()}, started '
                 f'{time.strftime("%Y-%m-%d %H:%M:%S")}: '
                 f'{" ".join(sys.argv)}\n').encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> 'WorkDirLock':
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def configure(cfg: Config, args, default_scope: Optional[str] = None) -> None:
    """Merge the checked ``--cfg-options``, then the common arguments; turn
    ``compile`` into :class:`ModelCompileHook` (MMEngine would compile the
    whole train step, optimizer included, which torch 2.14 cannot); with
    ``default_scope``, make the config's scope (or that one) the default."""
    merge_cfg_options(cfg, args.cfg_options)
    apply_common_arguments(cfg, args)
    use_compile_hook(cfg)
    if default_scope is not None:
        init_default_scope(cfg.get('default_scope', default_scope))


def train(cfg: Config,
          resume: Optional[str] = None,
          cfg_options: Optional[dict] = None) -> None:
    """Train ``cfg`` holding the work directory's lock (on rank 0), after
    resolving ``--resume`` with the ``--cfg-options`` that were given
    (:func:`resolve_resume`); the main process records the start and how it
    ended in ``run_info.json`` (:class:`~mmrevode.engine.run_info.RunInfo`).
    """
    lock = WorkDirLock(cfg.work_dir) if is_main_launch() else None
    if lock is not None:
        lock.acquire()
    try:
        resumed_from = resolve_resume(cfg, resume, cfg_options)
        runner = build_runner(cfg)
        record = RunInfo(runner, cfg_options, resumed_from).start() \
            if runner.rank == 0 else None
        try:
            runner.train()
        except DivergenceError as e:
            if record is not None:
                record.end('diverged', str(e))
            raise
        except KeyboardInterrupt:
            if record is not None:
                record.end('interrupted')
            raise
        except BaseException as e:
            if record is not None:
                record.end('failed', f'{type(e).__name__}: {e}')
            raise
        if record is not None:
            record.end('finished')
    finally:
        if lock is not None:
            lock.release()


def build_runner(cfg: Config) -> Runner:
    """Set up CPU DDP when needed and build the Runner of ``cfg``."""
    setup_distributed(cfg)
    if 'runner_type' not in cfg:
        return Runner.from_cfg(cfg)
    return RUNNERS.build(cfg)


#: Where the launchers put a process's rank before MMEngine sets ``RANK``
#: (torchrun sets ``RANK`` itself; Slurm and MPI their own variables).
RANK_VARIABLES = ('RANK', 'SLURM_PROCID', 'OMPI_COMM_WORLD_RANK', 'PMI_RANK')


def is_main_launch() -> bool:
    """Whether this process is rank 0 of its launch (or not distributed),
    known before the Runner initialises the process group."""
    for name in RANK_VARIABLES:
        if os.environ.get(name, '').isdigit():
            return int(os.environ[name]) == 0
    return True


def run_cli(main: Callable[[], Optional[int]]) -> int:
    """Run a tool's ``main``; print an error in one message.

    Errors a user can fix (:data:`USER_ERRORS`) print their message; any
    other error (a config value a class refuses, a syntax error in a config,
    a missing optional package, ...) prints its type and message in one
    line. With the environment variable ``MMREVODE_DEBUG=1`` such errors
    show their traceback instead.

    Returns:
        int: ``main``'s exit status (0 for None), or 1 after an error.
    """
    try:
        return main() or 0
    except USER_ERRORS as e:
        print(f'\nError: {e}', file=sys.stderr)
        return 1
    except Exception as e:
        if os.environ.get('MMREVODE_DEBUG', '') not in ('', '0'):
            raise
        message = ' '.join(str(e).split()) or 'no message'
        print(f'\nError: {type(e).__name__}: {message} (MMREVODE_DEBUG=1 '
              'shows the traceback)', file=sys.stderr)
        return 1
