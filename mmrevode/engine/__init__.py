"""Runner-side helpers: safe checkpoints, hooks, CPU DDP, the tools' launcher.

One job per module: ``checkpoint`` (safe loading, atomic writes),
``checkpoint_fit`` (do a checkpoint's weights fit a model),
``checkpoint_hook`` (:class:`SafeCheckpointHook`), ``divergence``
(:class:`DivergenceHook`), ``seeding`` (:class:`EpochSeedHook`,
:func:`seed_worker_by_epoch`), ``options`` (the tools' command line and
checked ``--cfg-options``), ``launcher`` (running a config), and
``compile``, ``definition``, ``dist``, ``optim_wrapper``, ``rebuild_check``,
``resume``, ``resume_state``, ``run_info``.

Importing this package registers, under new names, the ``'atomic_local'``
file backend, the hooks :class:`SafeCheckpointHook`, :class:`DivergenceHook`,
:class:`EpochSeedHook`, :class:`ModelCompileHook`,
:class:`ResumeOptionsHook` and :class:`RebuildCheckHook`, the optimizer
wrapper :class:`GuardedOptimWrapper`, and the data-loader ``worker_init_fn``
``'seed_worker_by_epoch'``. It replaces nothing of MMEngine's:
:func:`install_checkpoint_loaders` does that, called by ``import mmrevode``.
"""
from .checkpoint import (AtomicLocalBackend,
                         CheckpointError, CheckpointNotFoundError,
                         CorruptCheckpointError, UnsafeCheckpointError,
                         atomic_write, find_resume_checkpoint,
                         install_checkpoint_loaders, load_from_local,
                         load_from_url, plain_message_hub,
                         restore_message_hub, trust_checkpoints)
from .compile import ModelCompileHook, compile_model, use_compile_hook
from .definition import (MissingDefinitionError, NetworkMismatchError,
                         add_definition)
from .dist import setup_distributed
from .checkpoint_fit import (CheckpointMismatchError, check_checkpoint_fits,
                             checkpoint_mismatches)
from .checkpoint_hook import SafeCheckpointHook
from .divergence import DivergenceError, DivergenceHook
from .optim_wrapper import GuardedOptimWrapper
from .rebuild_check import (RebuildCheckHook, RebuildMismatchError,
                            reversible_units)
from .resume import ResumeError, ResumeOptionsHook, plan_resume_options
from .resume_state import ResumeStateError, check_resume_state
from .run_info import RUN_INFO_FILE, RunInfo
from .seeding import EpochSeedHook, seed_worker_by_epoch

__all__ = [
    'AtomicLocalBackend', 'CheckpointError', 'CheckpointMismatchError',
    'CheckpointNotFoundError', 'CorruptCheckpointError', 'DivergenceError',
    'DivergenceHook', 'EpochSeedHook', 'GuardedOptimWrapper',
    'MissingDefinitionError', 'ModelCompileHook', 'NetworkMismatchError',
    'RUN_INFO_FILE', 'RebuildCheckHook', 'RebuildMismatchError',
    'ResumeError', 'ResumeOptionsHook', 'ResumeStateError', 'RunInfo',
    'SafeCheckpointHook', 'UnsafeCheckpointError', 'add_definition',
    'atomic_write', 'check_checkpoint_fits', 'check_resume_state',
    'checkpoint_mismatches', 'compile_model', 'find_resume_checkpoint',
    'install_checkpoint_loaders', 'load_from_local', 'load_from_url',
    'plain_message_hub',
    'plan_resume_options', 'restore_message_hub', 'reversible_units',
    'seed_worker_by_epoch', 'setup_distributed', 'trust_checkpoints',
    'use_compile_hook'
]
