"""Memory of a training step: saved-for-backward bytes and peak memory.

- :func:`count_saved_bytes` counts the tensors autograd saves for backward,
  once per storage, optionally split by part of the model;
- :class:`MemoryMeter` reads the memory held now and at peak (CUDA's
  allocator, or the resident set of the process on a CPU);
- :func:`configure_malloc` makes glibc return freed memory promptly, so that
  the resident set follows the memory in use;
- :func:`run_in_fresh_process` runs a measurement in a new Python process,
  whose heap holds nothing of what ran before.
"""
import ctypes
import gc
import json
import os
import os.path as osp
import re
import subprocess
import sys
import tempfile
import weakref
from contextlib import contextmanager
from typing import Any, Callable, Dict, Optional, Sequence

import torch
from torch import Tensor, nn

_LIBC = None
# mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3


@contextmanager
def count_saved_bytes(exclude: Sequence[Tensor] = (),
                      parts: Optional[Dict[str, nn.Module]] = None):
    """Count the bytes of the tensors saved for backward inside the context.

    The tensors are caught with
    :func:`torch.autograd.graph.saved_tensors_hooks` and counted when the
    context exits, if the graph still holds them then (what autograd saves
    and drops again, e.g. in a unit whose inputs and parameters need no
    gradient, is not counted), and once per storage (a tensor saved by
    several operations, or views of one tensor, count once).

    Args:
        exclude (Sequence[Tensor]): Tensors whose storages are not counted
            (parameters, buffers). Defaults to ().
        parts (dict[str, nn.Module], optional): Attribute each saved tensor
            to the part (e.g. ``'stem'``, ``'unit0'``) whose forward saved
            it; what no part saves is ``'other'``. Defaults to None.

    Yields:
        dict: ``'bytes'``, the total, and with ``parts`` also
        ``'by_part'``, the bytes of each part; both filled in on exit.
    """
    excluded = {t.untyped_storage().data_ptr() for t in exclude}
    region = ['other']
    packed = []
    handles = []
    for name, module in (parts or {}).items():
        handles.append(
            module.register_forward_pre_hook(
                lambda m, i, name=name: region.__setitem__(0, name)))
        handles.append(
            module.register_forward_hook(
                lambda m, i, o: region.__setitem__(0, 'other')))

    def pack(tensor: Tensor) -> Tensor:
        packed.append((region[0], weakref.ref(tensor)))
        return tensor

    result: Dict[str, Any] = dict(bytes=0)
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            yield result
    finally:
        for handle in handles:
            handle.remove()
    storages: Dict[int, tuple] = {}
    tensor = None
    for name, ref in packed:
        tensor = ref()
        if tensor is None:
            continue
        try:
            storage = tensor.untyped_storage()
        except (RuntimeError, NotImplementedError):  # e.g. sparse tensors
            continue
        key = storage.data_ptr()
        if key not in excluded and key not in storages:
            storages[key] = (name, storage.nbytes())
    del tensor, packed
    by_part: Dict[str, int] = {}
    for name, nbytes in storages.values():
        by_part[name] = by_part.get(name, 0) + nbytes
    result['bytes'] = sum(by_part.values())
    if parts is not None:
        result['by_part'] = by_part


def _proc_kib(path: str, key: str) -> int:
    with open(path) as f:
        match = re.search(rf'^{key}:\s+(\d+) kB', f.read(), re.MULTILINE)
    return int(match.group(1))


def _libc():
    global _LIBC
    if _LIBC is None:
        try:
            _LIBC = ctypes.CDLL('libc.so.6')
            _LIBC.malloc_trim  # glibc only
        except (OSError, AttributeError):
            _LIBC = False
    return _LIBC


def has_glibc() -> bool:
    """Whether the allocator is glibc's (whose settings the tools tune)."""
    return bool(_libc())


def release_free_memory():
    """Collect garbage and give freed heap pages back to the system."""
    gc.collect()
    if _libc():
        _libc().malloc_trim(0)


def configure_malloc(trim_threshold: int = 1 << 20,
                     mmap_threshold: int = 128 << 10) -> Optional[str]:
    """Have glibc return freed memory to the system promptly.

    By default glibc raises its mmap threshold as a process frees large
    blocks, after which large tensors come from the heap, where freed
    memory stays in the resident set. In a long backward this slack grew
    with depth (for Hamiltonian-770 at batch 64, 330 to 430 MiB of resident
    set over the about 100 MiB the reversible step actually held), so the
    peak resident set measured the allocator's history rather than the
    model. A fixed mmap threshold (``M_MMAP_THRESHOLD``, glibc's initial
    128 KiB), trim threshold (``M_TRIM_THRESHOLD``) and no top padding
    (``M_TOP_PAD``) keep the resident set close to the memory in use, as
    ``torch.cuda.max_memory_allocated`` is on a GPU. The same holds for a
    process started with ``MALLOC_MMAP_THRESHOLD_=131072
    MALLOC_TRIM_THRESHOLD_=1048576 MALLOC_TOP_PAD_=0``. It slows steps down
    (pages are faulted in for every large tensor), so step times are taken
    before it is set.

    Args:
        trim_threshold (int): ``M_TRIM_THRESHOLD`` in bytes; negative keeps
            glibc's defaults. Defaults to 1 MiB.
        mmap_threshold (int): ``M_MMAP_THRESHOLD`` in bytes.
            Defaults to 128 KiB.

    Returns:
        str | None: A description of the setting, or None where there is no
        glibc (or ``trim_threshold`` is negative).
    """
    libc = _libc()
    if not libc or trim_threshold < 0:
        return None
    if not (libc.mallopt(_M_MMAP_THRESHOLD, mmap_threshold)
            and libc.mallopt(_M_TRIM_THRESHOLD, trim_threshold)
            and libc.mallopt(_M_TOP_PAD, 0)):
        return None
    return (f'glibc M_MMAP_THRESHOLD={mmap_threshold}, '
            f'M_TRIM_THRESHOLD={trim_threshold}, M_TOP_PAD=0')


class MemoryMeter:
    """Memory allocated now and at peak, over a baseline.

    On CUDA: ``torch.cuda.memory_allocated`` and ``max_memory_allocated``.
    On CPU: the resident set size and its high-water mark from
    ``/proc/self/status``; the mark is reset by writing 5 to
    ``/proc/self/clear_refs`` (Linux). Where neither works, the readings are
    None.

    Args:
        device (str | torch.device): The device of the model.
    """

    def __init__(self, device):
        self.device = torch.device(device)
        self.method = 'cuda' if self.device.type == 'cuda' else 'rss'
        self.base = 0
        if self.method == 'rss':
            try:
                _proc_kib('/proc/self/status', 'VmRSS')
                with open('/proc/self/clear_refs', 'w') as f:
                    f.write('5')
            except (OSError, AttributeError):
                self.method = None

    def _sync(self):
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)

    def start(self):
        """Set the baseline and reset the peak."""
        release_free_memory()
        self._sync()
        if self.method == 'cuda':
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
        elif self.method == 'rss':
            with open('/proc/self/clear_refs', 'w') as f:
                f.write('5')
            self.base = _proc_kib('/proc/self/status', 'VmRSS') * 1024

    def current(self) -> Optional[int]:
        """Allocated now, over the baseline (freed memory released first)."""
        release_free_memory()
        self._sync()
        if self.method == 'cuda':
            return torch.cuda.memory_allocated(self.device) - self.base
        if self.method == 'rss':
            return _proc_kib('/proc/self/status', 'VmRSS') * 1024 - self.base
        return None

    def peak(self) -> Optional[int]:
        """Peak since :meth:`start`, over the baseline."""
        self._sync()
        if self.method == 'cuda':
            return torch.cuda.max_memory_allocated(self.device) - self.base
        if self.method == 'rss':
            return _proc_kib('/proc/self/status', 'VmHWM') * 1024 - self.base
        return None


def total_memory_bytes() -> Optional[int]:
    """The machine's memory (``MemTotal``), or None where unknown."""
    try:
        return _proc_kib('/proc/meminfo', 'MemTotal') * 1024
    except (OSError, AttributeError):
        return None


def run_in_fresh_process(function: Callable, **kwargs) -> Any:
    """Call ``function(**kwargs)`` in a new Python process.

    The process imports this checkout's ``mmrevode`` and runs
    ``python -m mmrevode.analysis.worker``; the arguments and the result go
    through JSON files, so both must be JSON-serialisable.

    Args:
        function (callable): A module-level function.
        **kwargs: Its arguments.

    Returns:
        The function's result, as read back from JSON.
    """
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        p for p in [root, env.get('PYTHONPATH')] if p)
    with tempfile.TemporaryDirectory() as tmp:
        request, answer = osp.join(tmp, 'in.json'), osp.join(tmp, 'out.json')
        with open(request, 'w') as f:
            json.dump(
                dict(
                    module=function.__module__,
                    name=function.__qualname__,
                    kwargs=kwargs), f)
        subprocess.run(
            [sys.executable, '-m', 'mmrevode.analysis.worker', request,
             answer],
            env=env,
            check=True)
        with open(answer) as f:
            return json.load(f)
