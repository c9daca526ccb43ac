"""NumPy arrays, dtypes and scalars, read from pickles as plain numbers.

NumPy's own pickle support is not safe to admit: ``numpy.dtype``'s
``__setstate__`` accepts fields of Python objects from the file, after which
the array's bytes are used as object pointers (a crash, or worse). Here a
dtype is built only from a short list of plain numeric descriptions
(:data:`NUMERIC_DTYPES`) and a byte order; an array only from its raw bytes,
whose length must match its shape and dtype exactly.
"""
import math
from typing import Any, Dict, Tuple

import numpy as np

from .unpickler import Record, UnsafePickleError

#: The dtypes an array or scalar may have: booleans, integers and floats.
NUMERIC_DTYPES = frozenset(
    ['b1', 'i1', 'i2', 'i4', 'i8', 'u1', 'u2', 'u4', 'u8', 'f2', 'f4', 'f8'])
_BYTE_ORDERS = ('<', '>', '|', '=')
_MAX_DIMS = 64


def _text(value: Any) -> Any:
    """Python 2 pickles read with ``encoding='bytes'`` give bytes."""
    return value.decode('ascii') if isinstance(value, bytes) else value


class DTypeRecord(Record):
    """``numpy.dtype(descr, align, copy)`` followed by its state."""

    def __init__(self, descr: str):
        self.descr = descr

    def build(self, state: Any) -> np.dtype:
        # (version, byte order, subarray, names, fields, elsize, alignment,
        #  flags[, metadata]): plain numbers have no subarray, names, fields,
        # fixed size or metadata.
        if not (type(state) is tuple and len(state) in (8, 9)):
            raise UnsafePickleError(f'a dtype state {state!r:.80}')
        version, order, subarray, names, fields, elsize, alignment = \
            state[:7]
        order = _text(order)
        if version not in (3, 4) or order not in _BYTE_ORDERS or any(
                x is not None for x in (subarray, names, fields)) or \
                elsize != -1 or alignment != -1 or \
                type(state[7]) is not int or \
                (len(state) == 9 and state[8] is not None):
            raise UnsafePickleError(
                f'a dtype with fields, sub-arrays or metadata '
                f'({state!r:.80}): only plain numbers are read')
        dtype = np.dtype(self.descr)
        return dtype.newbyteorder(order) if order in '<>' else dtype


def make_dtype(descr: Any, align: Any = False, copy: Any = True) -> Record:
    """Stands in for ``numpy.dtype``: a numeric description only."""
    descr = _text(descr)
    if not (isinstance(descr, str) and descr in NUMERIC_DTYPES
            and isinstance(align, bool) and isinstance(copy, bool)):
        raise UnsafePickleError(
            f'the dtype {descr!r:.40}: only {sorted(NUMERIC_DTYPES)} are read')
    return DTypeRecord(descr)


def _dtype(value: Any) -> np.dtype:
    """A dtype built by :class:`DTypeRecord` (and only such a dtype)."""
    if not (isinstance(value, np.dtype) and value.fields is None
            and value.subdtype is None and value.str[1:] in NUMERIC_DTYPES):
        raise UnsafePickleError(f'an array or scalar of dtype {value!r:.60}'
                                ', which is not a numeric dtype')
    return value


def _shape(value: Any) -> Tuple[int, ...]:
    if not (type(value) is tuple and len(value) <= _MAX_DIMS and all(
            type(n) is int and 0 <= n < 2**63 for n in value)):
        raise UnsafePickleError(f'the array shape {value!r:.80}')
    return value


def _raw_bytes(raw: Any) -> bytes:
    if isinstance(raw, str):  # Python 2 strings read with encoding='latin1'
        raw = raw.encode('latin1')
    if not isinstance(raw, (bytes, bytearray)):
        raise UnsafePickleError(
            f'array data of type {type(raw).__name__}: only raw bytes are '
            'read (no Python objects)')
    return bytes(raw)


def _array(raw: Any, dtype: np.dtype, shape: Tuple[int, ...],
           fortran: bool) -> np.ndarray:
    raw = _raw_bytes(raw)
    expected = math.prod(shape) * dtype.itemsize
    if len(raw) != expected:
        raise UnsafePickleError(
            f'an array of shape {shape} and dtype {dtype}, which needs '
            f'{expected} bytes where the file has {len(raw)}')
    return np.frombuffer(raw, dtype=dtype).reshape(
        shape, order='F' if fortran else 'C').copy(order='K')


class ArrayRecord(Record):
    """``numpy.core.multiarray._reconstruct(ndarray, ...)`` followed by the
    array's state ``(version, shape, dtype, is_fortran, raw bytes)``."""

    def build(self, state: Any) -> np.ndarray:
        if not (type(state) is tuple and len(state) == 5
                and state[0] == 1 and isinstance(state[3], bool)):
            raise UnsafePickleError(f'an array state {state!r:.80}')
        _, shape, dtype, fortran, raw = state
        return _array(raw, _dtype(dtype), _shape(shape), fortran)


class NDArrayType:
    """Stands in for ``numpy.ndarray`` as the first argument of
    ``_reconstruct``; it cannot be called or built."""


def reconstruct(cls: Any, shape: Any, typecode: Any) -> ArrayRecord:
    """Stands in for ``numpy.core.multiarray._reconstruct``."""
    if cls is not NDArrayType:
        raise UnsafePickleError(f'_reconstruct of {cls!r:.80}: only plain '
                                'arrays are read')
    return ArrayRecord()


def frombuffer(buffer: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    """Stands in for ``numpy.core.numeric._frombuffer`` (protocol 5)."""
    if order not in ('C', 'F'):
        raise UnsafePickleError(f'the array order {order!r:.20}')
    return _array(buffer, _dtype(dtype), _shape(shape), order == 'F')


def scalar(dtype: Any, raw: Any) -> np.generic:
    """Stands in for ``numpy.core.multiarray.scalar``."""
    return _array(raw, _dtype(dtype), (), False)[()]


def encode(text: Any, encoding: Any = 'utf-8') -> bytes:
    """Stands in for ``_codecs.encode``, which protocol-2 pickles use for
    bytes: text to bytes in Latin-1 only."""
    if not isinstance(text, str) or encoding not in ('latin1', 'latin-1'):
        raise UnsafePickleError(
            f'_codecs.encode of {type(text).__name__} with {encoding!r:.20}')
    return text.encode('latin1')


#: What NumPy records build.
NUMPY_TYPES = (np.ndarray, np.generic, np.dtype)


def numpy_globals() -> Dict[Tuple[str, str], Any]:
    """The table entries of NumPy arrays, dtypes and scalars (NumPy 1 and 2
    module names) and of protocol-2 bytes."""
    table: Dict[Tuple[str, str], Any] = {
        ('numpy', 'ndarray'): NDArrayType,
        ('numpy', 'dtype'): make_dtype,
        ('_codecs', 'encode'): encode,
    }
    for core in ('numpy.core', 'numpy._core'):
        table[(f'{core}.multiarray', '_reconstruct')] = reconstruct
        table[(f'{core}.multiarray', 'scalar')] = scalar
        table[(f'{core}.numeric', '_frombuffer')] = frombuffer
    return table
