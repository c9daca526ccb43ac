"""Runner-side helpers: safe checkpoints, hooks, CPU DDP, the tools' launcher.

Importing this package registers the local checkpoint loader (data only:
:mod:`mmrevode.fileio.checkpoint_pickle`), the ``'atomic_local'`` file
backend, the hooks :class:`SafeCheckpointHook`, :class:`DivergenceHook`,
:class:`EpochSeedHook`, :class:`ModelCompileHook`,
:class:`ResumeOptionsHook` and :class:`RebuildCheckHook`, the optimizer
wrapper :class:`GuardedOptimWrapper`, and the data-loader ``worker_init_fn``
``'seed_worker_by_epoch'``.
"""
from .checkpoint import (AtomicLocalBackend,
                         CheckpointError, CheckpointNotFoundError,
                         CorruptCheckpointError, UnsafeCheckpointError,
                         atomic_write, find_resume_checkpoint, load_from_local,
                         load_from_url, plain_message_hub,
                         restore_message_hub, trust_checkpoints)
from .compile import ModelCompileHook, compile_model, use_compile_hook
from .definition import (MissingDefinitionError, NetworkMismatchError,
                         add_definition)
from .dist import setup_distributed
from .hooks import (CheckpointMismatchError, DivergenceError, DivergenceHook,
                    EpochSeedHook, SafeCheckpointHook, check_checkpoint_fits,
                    checkpoint_mismatches, seed_worker_by_epoch)
from .optim_wrapper import GuardedOptimWrapper
from .rebuild_check import (RebuildCheckHook, RebuildMismatchError,
                            reversible_units)
from .resume import ResumeError, ResumeOptionsHook, plan_resume_options
from .resume_state import ResumeStateError, check_resume_state
from .run_info import RUN_INFO_FILE, RunInfo

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
    'load_from_local', 'load_from_url', 'plain_message_hub',
    'plan_resume_options', 'restore_message_hub', 'reversible_units',
    'seed_worker_by_epoch', 'setup_distributed', 'trust_checkpoints',
    'use_compile_hook'
]
