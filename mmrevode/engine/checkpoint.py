"""Loading and saving checkpoints safely with MMEngine 0.10.

Importing this module

- registers :func:`load_from_local` as MMEngine's loader for local files, so
  ``load_from``, ``resume``, ``tools/test.py`` and ``init_cfg=dict(
  type='Pretrained')`` all use it. It calls ``torch.load(weights_only=True)``
  with an allowlist of exactly the types that MMEngine, MMPretrain and
  mmrevode checkpoints hold (:data:`CHECKPOINT_SAFE_GLOBALS`): the
  ``HistoryBuffer`` of MMEngine's message hub and the NumPy arrays, dtypes
  and scalars in it. Loading such a file cannot run code. (MMEngine 0.10.7
  calls ``torch.load`` with torch's default, which refuses the
  ``HistoryBuffer`` of its own checkpoints since torch 2.6.) A file that
  needs any other type is refused with :class:`UnsafeCheckpointError`,
  which names the type; :func:`trust_checkpoints` (``--trust-checkpoint``
  of the tools) loads such files with ``weights_only=False``, for files you
  trust only.
- registers the file backend ``'atomic_local'`` (:class:`AtomicLocalBackend`),
  which writes a file to a temporary name in the same folder and renames it
  into place, so a failed or interrupted write never leaves a partial file
  under the final name nor replaces an earlier file.
"""

import contextlib
import os
import os.path as osp
import pickle
import re
import zipfile
from typing import Iterator, List, Union

import numpy as np
import torch
from mmengine.fileio import LocalBackend, register_backend
from mmengine.logging import HistoryBuffer, print_log
from mmengine.runner import CheckpointLoader


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used. Base of the errors below."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The checkpoint file does not exist."""


class CorruptCheckpointError(CheckpointError):
    """The checkpoint file exists but is truncated, corrupt or not one."""


class UnsafeCheckpointError(CheckpointError):
    """The checkpoint needs a type outside the allowlist to be loaded."""


#: The statistics methods every HistoryBuffer registers (those registered
#: with ``HistoryBuffer.register_statistics`` in this process are allowed too).
_HISTORY_BUFFER_STATISTICS = ('min', 'max', 'mean', 'current')


def _statistic_method(owner, name: str):
    """Stands in for ``getattr`` while a checkpoint is loaded.

    A pickled ``HistoryBuffer`` names its statistics methods as
    ``getattr(HistoryBuffer, 'mean')``; a general ``getattr`` would reach far
    more, so only those attributes are handed out.
    """
    if owner is HistoryBuffer and isinstance(name, str) and (
            name in _HISTORY_BUFFER_STATISTICS
            or name in HistoryBuffer._statistics_methods):
        return getattr(owner, name)
    raise pickle.UnpicklingError(
        f'refused getattr({owner!r}, {name!r}): only the statistics methods '
        'of HistoryBuffer are loaded')


def _numpy_globals() -> List[object]:
    """The NumPy functions and types that pickled arrays and scalars use:
    array reconstruction, scalars and the dtypes of numbers, booleans and
    strings (not of Python objects)."""
    try:  # NumPy >= 2
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # NumPy 1.x
        from numpy.core.multiarray import _reconstruct, scalar
    dtypes = {
        type(np.dtype(t))
        for t in np.sctypeDict.values() if np.dtype(t).kind not in 'OV'
    }
    return [_reconstruct, scalar, np.ndarray, np.dtype] + sorted(
        dtypes, key=lambda t: t.__name__)


#: What checkpoints of MMEngine's Runner (model, optimizer, schedulers and
#: message hub), MMPretrain and mmrevode hold beyond tensors and builtin
#: containers: the message hub's ``HistoryBuffer`` (with its statistics
#: methods, named through ``getattr``) and NumPy arrays, dtypes and scalars.
#: Each is plain data: building it runs no code of the file's choosing.
CHECKPOINT_SAFE_GLOBALS: List[object] = [
    HistoryBuffer, (_statistic_method, 'builtins.getattr')
] + _numpy_globals()

_trusted = False


def trust_checkpoints(trusted: bool = True) -> None:
    """Load every checkpoint of this process with ``weights_only=False``.

    For checkpoints you made or trust that hold types outside
    :data:`CHECKPOINT_SAFE_GLOBALS`. Loading such a file runs whatever code
    it names: never use this for files from others. ``tools/train.py`` and
    ``tools/test.py`` call it for ``--trust-checkpoint``.

    Args:
        trusted (bool): Turn trusted loading on or off. Defaults to True.
    """
    global _trusted
    _trusted = bool(trusted)


@contextlib.contextmanager
def _allowlisted() -> Iterator[None]:
    with torch.serialization.safe_globals(CHECKPOINT_SAFE_GLOBALS):
        yield


def _refused_type(error: Exception) -> str:
    """The global that ``torch.load(weights_only=True)`` refused, if named."""
    for pattern in (r'GLOBAL ([\w.]+)', r"got <class '([\w.]+)'>",
                    r'function ([\w.<>]+)', r'refused (getattr\(.*?\))'):
        found = re.search(pattern, str(error))
        if found:
            return found.group(1)
    return ''


def _zip_is_intact(filename: str) -> bool:
    """Whether ``filename`` is a zip archive whose members pass their CRC."""
    try:
        with zipfile.ZipFile(filename) as archive:
            return archive.testzip() is None
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        return False


def load_from_local(filename: str, map_location=None):
    """Load a local checkpoint without running code from it.

    ``torch.load(weights_only=True)`` with :data:`CHECKPOINT_SAFE_GLOBALS`
    allowed; with :func:`trust_checkpoints` on, ``weights_only=False`` and a
    warning in the log. Registered as MMEngine's loader for paths without a
    scheme prefix.

    Args:
        filename (str): Path of the checkpoint.
        map_location (optional): As in :func:`torch.load`.

    Returns:
        dict: The loaded checkpoint.

    Raises:
        CheckpointNotFoundError: The file does not exist.
        UnsafeCheckpointError: The file needs a type outside the allowlist.
        CorruptCheckpointError: The file cannot be read as a checkpoint
            (truncated, corrupt, or not a PyTorch checkpoint).
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise CheckpointNotFoundError(
            f'The checkpoint {filename} does not exist.')
    if _trusted:
        print_log(
            f'Loading {filename} with weights_only=False '
            '(--trust-checkpoint): it may run code it contains.',
            logger='current',
            level=30)
        loader = contextlib.nullcontext
    else:
        loader = _allowlisted
    try:
        with loader():
            return torch.load(
                filename, map_location=map_location, weights_only=not _trusted)
    except pickle.UnpicklingError as e:
        refused = _refused_type(e)
        if refused:
            raise UnsafeCheckpointError(
                f'The checkpoint {filename} needs `{refused}`, which '
                'checkpoints of MMEngine, MMPretrain and mmrevode do not '
                'hold; loading it could run code, so it was refused. If you '
                'made the file '
                'or trust its source, load it with --trust-checkpoint '
                '(tools/train.py, tools/test.py) or '
                '`mmrevode.engine.trust_checkpoints()`.') from None
        error = e
    except Exception as e:
        error = e
    # A well-formed archive that fails to load fails for another reason
    # (e.g. CUDA tensors without a GPU): keep the original error then.
    if _zip_is_intact(filename):
        raise error
    size = osp.getsize(filename)
    raise CorruptCheckpointError(
        f'The checkpoint {filename} ({size} bytes) cannot be read: it is '
        'truncated, corrupt or not a PyTorch checkpoint '
        f'({type(error).__name__}: {error}). Use an earlier checkpoint of the '
        'run (epoch_*.pth in the work directory), or train again.') from error


CheckpointLoader.register_scheme(prefixes='', loader=load_from_local,
                                 force=True)


def _fsync_dir(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open folders
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(data: Union[bytes, str],
                 filepath: Union[str, os.PathLike],
                 encoding: str = 'utf-8') -> None:
    """Write ``data`` to ``filepath`` all at once, or not at all.

    The data go to a hidden temporary file in the same folder, which is
    flushed to disk and then renamed over ``filepath`` (``os.replace`` is
    atomic on POSIX and Windows). If anything fails, the temporary file is
    removed and an existing ``filepath`` is left as it was.

    Args:
        data (bytes | str): The content; text is encoded with ``encoding``.
        filepath (str | PathLike): The destination.
        encoding (str): Encoding of text. Defaults to ``'utf-8'``.
    """
    filepath = os.fspath(filepath)
    folder = osp.dirname(osp.abspath(filepath))
    os.makedirs(folder, exist_ok=True)
    if isinstance(data, str):
        data = data.encode(encoding)
    tmp = osp.join(folder, f'.{osp.basename(filepath)}.{os.getpid()}.tmp')
    try:
        with open(tmp, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, filepath)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise
    _fsync_dir(folder)


@register_backend('atomic_local')
class AtomicLocalBackend(LocalBackend):
    """The local file backend, with writes that are all-or-nothing.

    ``put`` and ``put_text`` use :func:`atomic_write`; everything else is
    :class:`mmengine.fileio.LocalBackend`. Use it with
    ``backend_args=dict(backend='atomic_local')`` wherever MMEngine takes
    ``backend_args``; :class:`SafeCheckpointHook` does so by default.
    """

    def put(self, obj: bytes, filepath) -> None:
        """Write bytes to ``filepath`` atomically."""
        atomic_write(obj, filepath)

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        """Write text to ``filepath`` atomically."""
        atomic_write(obj, filepath, encoding=encoding)


def find_resume_checkpoint(work_dir: str) -> Union[str, None]:
    """The checkpoint that ``--resume`` without a path continues from.

    Reads ``<work_dir>/last_checkpoint``. A relative path in it is relative
    to ``work_dir``; an absolute one that lies in another folder (a work
    directory that was moved or copied) is replaced by the file of the same
    name in ``work_dir`` when that exists, so a moved work directory resumes
    from its own checkpoints, never from the old folder's.

    Args:
        work_dir (str): The work directory.

    Returns:
        str | None: The checkpoint's path, or None if the work directory has
        no ``last_checkpoint``.
    """
    pointer = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(pointer):
        return None
    with open(pointer) as f:
        path = f.read().strip()
    if not path:
        return None
    if not osp.isabs(path) and '://' not in path:
        return osp.join(work_dir, path)
    local = osp.join(work_dir, osp.basename(path))
    if osp.abspath(osp.dirname(path)) != osp.abspath(work_dir) and \
            osp.isfile(local):
        return local
    return path
