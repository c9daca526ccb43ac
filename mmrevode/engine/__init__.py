"""Runner-side helpers: checkpoint loading and safe saving, CPU DDP set-up.

Importing this package registers the local checkpoint loader (which works
under torch >= 2.6), the ``'atomic_local'`` file backend and
:class:`SafeCheckpointHook` and :class:`EpochSeedHook`.
"""
from .checkpoint import (AtomicLocalBackend, CheckpointError,
                         CheckpointNotFoundError, CorruptCheckpointError,
                         atomic_write, load_from_local)
from .dist import setup_distributed
from .hooks import EpochSeedHook, SafeCheckpointHook

__all__ = [
    'AtomicLocalBackend', 'CheckpointError', 'CheckpointNotFoundError',
    'CorruptCheckpointError', 'EpochSeedHook', 'SafeCheckpointHook',
    'atomic_write', 'load_from_local', 'setup_distributed'
]
