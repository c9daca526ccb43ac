"""The pickle module of checkpoints: ``torch.load(f, pickle_module=this)``.

:func:`torch.load` reads the zip archive and its tensor data itself and
leaves the object tree to ``pickle_module.Unpickler``; this module's
:class:`Unpickler` is a :class:`RecordUnpickler` whose table holds exactly
what checkpoints of MMEngine's Runner (model, optimizer, parameter
schedulers, message hub, EMA), MMPretrain and mmrevode contain:

- tensors (``torch._utils._rebuild_tensor_v2``), checked to lie inside
  their stored data, without backward hooks; parameters; torch dtypes,
  devices and sizes;
- ``OrderedDict`` (with a state dict's ``_metadata``), ``Counter`` (the
  milestones of MMEngine's step schedulers), sets;
- NumPy arrays, dtypes and scalars of numbers (:mod:`.numpy_records`);
- MMEngine's ``HistoryBuffer``, read as numbers into a record and built
  through its constructor; its statistics methods, which the file names as
  ``getattr(HistoryBuffer, 'mean')``, are the four defaults, named and
  nothing else. The class's ``__setstate__``, which writes a class-level
  dict, is never called.

Loading through it calls no function that the file chose and changes
nothing but the objects being built (see :mod:`.unpickler`).
"""
import math
import warnings
from collections import Counter, OrderedDict
from typing import Any, Dict, Tuple

import torch
from mmengine.logging import HistoryBuffer

from .numpy_records import NUMPY_TYPES, numpy_globals
from .unpickler import (Record, RecordUnpickler, UnsafePickleError,
                        check_key)

#: The statistics every ``HistoryBuffer`` has.
HISTORY_BUFFER_STATISTICS = ('min', 'max', 'mean', 'current')


def _is_int(value: Any, minimum: int = 0) -> bool:
    """An int in ``[minimum, 2**63)`` (no big ints: products of those
    would cost time before any bounds check)."""
    return type(value) is int and minimum <= value < 2**63


#: The dtypes of the tensors checkpoints hold: no complex or quantized
#: numbers, whose values the checks of the weights do not read.
TENSOR_DTYPES = frozenset([
    torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.uint8,
    torch.int8, torch.int16, torch.int32, torch.int64, torch.bool
])


def _empty_hooks(hooks: Any) -> None:
    if not (type(hooks) in (dict, OrderedDict) and not hooks):
        raise UnsafePickleError('a tensor with backward hooks: checkpoints '
                                'hold none')


def rebuild_tensor(storage: Any,
                   storage_offset: Any,
                   size: Any,
                   stride: Any,
                   requires_grad: Any = False,
                   backward_hooks: Any = None,
                   metadata: Any = None) -> torch.Tensor:
    """Stands in for ``torch._utils._rebuild_tensor_v2``: a view of a stored
    array that lies inside it."""
    if not isinstance(storage, torch.TypedStorage):
        raise UnsafePickleError(
            f'a tensor over {type(storage).__name__}, not stored data')
    with warnings.catch_warnings():  # TypedStorage is what torch.load gives
        warnings.simplefilter('ignore', UserWarning)
        data = storage.untyped()
    if storage.dtype not in TENSOR_DTYPES:
        raise UnsafePickleError(
            f'a tensor of dtype {storage.dtype}: checkpoints hold floats, '
            'ints and bools')
    if data.device.type == 'meta':
        raise UnsafePickleError('a tensor without data (on the meta device)')
    size = tuple(size) if type(size) in (tuple, torch.Size) else size
    if not (_is_int(storage_offset) and type(size) is tuple
            and type(stride) is tuple and len(size) == len(stride) <= 64
            and all(_is_int(n) for n in size)
            and all(_is_int(n) for n in stride)
            and isinstance(requires_grad, bool)):
        raise UnsafePickleError(
            f'a tensor of size {size!r:.60}, stride {stride!r:.60} and '
            f'offset {storage_offset!r:.20}')
    if backward_hooks is not None:
        _empty_hooks(backward_hooks)
    if metadata:
        raise UnsafePickleError('a tensor with metadata (conjugate or '
                                'negative bits): checkpoints hold none')
    numel = math.prod(size)
    stored = data.nbytes() // storage.dtype.itemsize
    if numel and (numel > stored or storage_offset + sum(
            (n - 1) * s for n, s in zip(size, stride)) >= stored):
        raise UnsafePickleError(
            f'a tensor of size {size} and stride {stride} at offset '
            f'{storage_offset} that reaches beyond its {stored} stored '
            'values')
    tensor = torch.empty((0, ), dtype=storage.dtype, device=data.device)
    tensor.set_(data, storage_offset, size, stride)
    if requires_grad:
        tensor.requires_grad_(True)
    return tensor


def rebuild_parameter(data: Any,
                      requires_grad: Any,
                      backward_hooks: Any,
                      state: Any = None) -> torch.nn.Parameter:
    """Stands in for ``torch._utils._rebuild_parameter`` (and
    ``_rebuild_parameter_with_state`` with an empty state)."""
    if not (type(data) is torch.Tensor and isinstance(requires_grad, bool)):
        raise UnsafePickleError('a parameter of something else than a tensor')
    _empty_hooks(backward_hooks)
    if state:
        raise UnsafePickleError('a parameter with Python attributes')
    return torch.nn.Parameter(data, requires_grad)


class TensorType:
    """Stands in for ``torch.Tensor`` as a type to rebuild as."""


class ParameterType:
    """Stands in for ``torch.nn.Parameter`` as a type to rebuild as."""


def rebuild_from_type(func: Any, new_type: Any, args: Any,
                      state: Any) -> torch.Tensor:
    """Stands in for ``torch._tensor._rebuild_from_type_v2``, which calls
    ``func(*args)``: here ``func`` is one of the tensor builders of this
    module, the type a plain tensor or parameter, the state empty."""
    if not any(func is f for f in (rebuild_tensor, rebuild_parameter)) or \
            not any(new_type is t for t in (TensorType, ParameterType)) or \
            type(args) is not tuple:
        raise UnsafePickleError(
            f'_rebuild_from_type_v2 with {func!r:.60} and {new_type!r:.60}: '
            'only plain tensors and parameters are rebuilt')
    if state:
        raise UnsafePickleError('a tensor with Python attributes')
    tensor = func(*args)
    if new_type is ParameterType and type(tensor) is torch.Tensor:
        tensor = torch.nn.Parameter(tensor, tensor.requires_grad)
    return tensor


def make_size(dims: Any = ()) -> torch.Size:
    """Stands in for ``torch.Size``."""
    if not (type(dims) in (tuple, list) and all(_is_int(n) for n in dims)):
        raise UnsafePickleError(f'torch.Size({dims!r:.60})')
    return torch.Size(dims)


def make_device(kind: Any, index: Any = None) -> torch.device:
    """Stands in for ``torch.device``: a name and an index."""
    if not (isinstance(kind, str) and len(kind) < 64 and
            (index is None or _is_int(index))):
        raise UnsafePickleError(f'torch.device({kind!r:.60}, {index!r:.20})')
    return torch.device(kind) if index is None else torch.device(kind, index)


def _given(items: Any) -> bool:
    return not (type(items) is tuple and not items)


def _pairs(items: Any) -> list:
    if type(items) is dict:
        return list(items.items())
    if type(items) is not list or not all(
            type(p) in (tuple, list) and len(p) == 2 for p in items):
        raise UnsafePickleError('a mapping built from something else than '
                                'pairs')
    return [(check_key(p[0]), p[1]) for p in items]


def make_ordered_dict(items: Any = ()) -> OrderedDict:
    """Stands in for ``collections.OrderedDict``."""
    return OrderedDict(_pairs(items) if _given(items) else ())


def make_counter(counts: Any = ()) -> Counter:
    """Stands in for ``collections.Counter``: counts given as a dict."""
    counter = Counter()
    for key, count in (_pairs(counts) if _given(counts) else ()):
        if not _is_int(count, minimum=-(2**63)):
            raise UnsafePickleError('a Counter with counts that are not ints')
        counter[key] = count
    return counter


def make_set(items: Any = ()) -> set:
    """Stands in for ``set``: from a list."""
    if type(items) not in (list, tuple):
        raise UnsafePickleError('a set built from something else than a list')
    return set(map(check_key, items))


def make_frozenset(items: Any = ()) -> frozenset:
    """Stands in for ``frozenset``: from a list."""
    return frozenset(make_set(items))


class StatisticName(str):
    """One of :data:`HISTORY_BUFFER_STATISTICS`, named by the file."""


class HistoryBufferRecord(Record):
    """MMEngine's ``HistoryBuffer``, read as its numbers."""

    def build(self, state: Any) -> HistoryBuffer:
        known = {'max_length', '_log_history', '_count_history',
                 'statistics_methods'}
        if type(state) is not dict or not set(state) <= known or \
                not {'_log_history', '_count_history'} <= set(state):
            raise UnsafePickleError(f'a HistoryBuffer state with keys '
                                    f'{sorted(map(str, state))!r:.80}'
                                    if type(state) is dict else
                                    'a HistoryBuffer state')
        logs, counts = state['_log_history'], state['_count_history']
        max_length = state.get('max_length', 1000000)
        methods = state.get('statistics_methods', {})
        if not (_arrays_1d(logs, counts) and _is_int(max_length, 1)):
            raise UnsafePickleError('a HistoryBuffer with histories that '
                                    'are not equal-length numeric arrays')
        if type(methods) is not dict or any(
                type(v) is not StatisticName or v != k
                for k, v in methods.items()):
            raise UnsafePickleError(
                'a HistoryBuffer with statistics methods other than '
                f'{HISTORY_BUFFER_STATISTICS}')
        return HistoryBuffer(logs, counts, max_length)


def _arrays_1d(*arrays: Any) -> bool:
    import numpy as np
    return all(
        isinstance(a, np.ndarray) and a.ndim == 1 and a.dtype.kind in 'biuf'
        for a in arrays) and len({len(a) for a in arrays}) == 1


def statistic_method(owner: Any, name: Any) -> StatisticName:
    """Stands in for ``getattr(HistoryBuffer, name)``: the name of one of the
    default statistics, nothing else."""
    if owner is not HistoryBufferRecord or type(name) is not str or \
            name not in HISTORY_BUFFER_STATISTICS:
        raise UnsafePickleError(
            f'getattr({getattr(owner, "__name__", type(owner).__name__)}, '
            f'{name!r:.40}): only the statistics methods '
            f'{HISTORY_BUFFER_STATISTICS} of HistoryBuffer are read')
    return StatisticName(name)


def _torch_dtypes() -> Dict[Tuple[str, str], torch.dtype]:
    return {('torch', name): value
            for name, value in vars(torch).items()
            if isinstance(value, torch.dtype)}


class Unpickler(RecordUnpickler):
    """Unpickle the object tree of a checkpoint (see the module docstring).

    ``torch.load`` sets ``persistent_load``, which reads the tensors' stored
    data from the archive.
    """
    globals = {
        ('torch._utils', '_rebuild_tensor_v2'): rebuild_tensor,
        ('torch._utils', '_rebuild_parameter'): rebuild_parameter,
        ('torch._utils', '_rebuild_parameter_with_state'): rebuild_parameter,
        ('torch._tensor', '_rebuild_from_type_v2'): rebuild_from_type,
        ('torch', 'Tensor'): TensorType,
        ('torch._tensor', 'Tensor'): TensorType,
        ('torch.nn.parameter', 'Parameter'): ParameterType,
        ('torch', 'Size'): make_size,
        ('torch', 'device'): make_device,
        ('collections', 'OrderedDict'): make_ordered_dict,
        ('collections', 'Counter'): make_counter,
        ('builtins', 'set'): make_set,
        ('builtins', 'frozenset'): make_frozenset,
        ('builtins', 'getattr'): statistic_method,
        ('mmengine.logging.history_buffer', 'HistoryBuffer'):
        HistoryBufferRecord,
        **_torch_dtypes(),
        **numpy_globals(),
    }
    result_types = (torch.Tensor, torch.dtype, torch.device, torch.Size,
                    OrderedDict, Counter, HistoryBuffer) + NUMPY_TYPES


def load(file, **kwargs):
    """Refused: :func:`torch.load` calls this only for the legacy
    (pre-zip) format, which is not read."""
    raise UnsafePickleError('the legacy (non-zip) checkpoint format is not '
                            'read')
