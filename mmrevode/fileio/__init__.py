"""Reading files that others may have made: pickles that build data only.

:mod:`.unpickler` is the restricted unpickler; :mod:`.numpy_records` reads
NumPy arrays as numbers; :mod:`.checkpoint_pickle` is the pickle module that
``torch.load`` uses for checkpoints (see
:func:`mmrevode.engine.load_from_local`).
"""
from . import checkpoint_pickle
from .numpy_records import NUMERIC_DTYPES, NUMPY_TYPES, numpy_globals
from .unpickler import (PLAIN_TYPES, Record, RecordUnpickler,
                        UnsafePickleError, check_plain, loads)

__all__ = [
    'NUMERIC_DTYPES', 'NUMPY_TYPES', 'PLAIN_TYPES', 'Record',
    'RecordUnpickler', 'UnsafePickleError', 'check_plain',
    'checkpoint_pickle', 'loads', 'numpy_globals'
]
