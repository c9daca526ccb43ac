"""Runner-side helpers: safe checkpoints, hooks, CPU DDP, the tools' launcher.

Importing this package registers the local checkpoint loader (weights only,
with an allowlist), the ``'atomic_local'`` file backend, the hooks
:class:`SafeCheckpointHook`, :class:`DivergenceHook`, :class:`EpochSeedHook`,
:class:`ModelCompileHook` and :class:`RebuildCheckHook`, and the data-loader
``worker_init_fn`` ``'seed_worker_by_epoch'``.
"""
from .checkpoint import (CHECKPOINT_SAFE_GLOBALS, AtomicLocalBackend,
                         CheckpointError, CheckpointNotFoundError,
                         CorruptCheckpointError, UnsafeCheckpointError,
                         atomic_write, find_resume_checkpoint, load_from_local,
                         trust_checkpoints)
from .compile import ModelCompileHook, compile_model, use_compile_hook
from .dist import setup_distributed
from .rebuild_check import (RebuildCheckHook, RebuildMismatchError,
                            reversible_units)
from .hooks import (CheckpointMismatchError, DivergenceError, DivergenceHook,
                    EpochSeedHook, SafeCheckpointHook, check_checkpoint_fits,
                    checkpoint_mismatches, seed_worker_by_epoch)

__all__ = [
    'AtomicLocalBackend', 'CHECKPOINT_SAFE_GLOBALS', 'CheckpointError',
    'CheckpointMismatchError', 'CheckpointNotFoundError',
    'CorruptCheckpointError', 'DivergenceError', 'DivergenceHook',
    'EpochSeedHook', 'ModelCompileHook', 'RebuildCheckHook',
    'RebuildMismatchError', 'reversible_units', 'SafeCheckpointHook',
    'UnsafeCheckpointError', 'compile_model', 'use_compile_hook',
    'atomic_write', 'check_checkpoint_fits', 'checkpoint_mismatches',
    'find_resume_checkpoint',
    'load_from_local', 'seed_worker_by_epoch', 'setup_distributed',
    'trust_checkpoints'
]
