"""Loading and saving checkpoints safely with MMEngine 0.10.

Importing this module

- registers :func:`load_from_local` as MMEngine's loader for local files.
  MMEngine 0.10.7 calls ``torch.load`` with torch's default ``weights_only``,
  which is ``True`` since torch 2.6, and its own checkpoints (which pickle a
  ``HistoryBuffer`` in the message hub) then fail to load. The loader passes
  ``weights_only=False`` and turns a truncated or corrupt file into a
  :class:`CorruptCheckpointError` that names the file. Checkpoints are
  pickles: load them from trusted sources only.
- registers the file backend ``'atomic_local'`` (:class:`AtomicLocalBackend`),
  which writes a file to a temporary name in the same folder and renames it
  into place, so a failed or interrupted write never leaves a partial file
  under the final name nor replaces an earlier file.
"""
import os
import os.path as osp
import zipfile
from typing import Union

import torch
from mmengine.fileio import LocalBackend, register_backend
from mmengine.runner import CheckpointLoader


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used. Base of the errors below."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The checkpoint file does not exist."""


class CorruptCheckpointError(CheckpointError):
    """The checkpoint file exists but is truncated, corrupt or not one."""


def _zip_is_intact(filename: str) -> bool:
    """Whether ``filename`` is a zip archive whose members pass their CRC."""
    try:
        with zipfile.ZipFile(filename) as archive:
            return archive.testzip() is None
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        return False


def load_from_local(filename: str, map_location=None):
    """Load a local checkpoint with ``torch.load(weights_only=False)``.

    Registered as MMEngine's loader for paths without a scheme prefix, so
    ``load_from``, ``resume``, ``tools/test.py`` and ``init_cfg=dict(
    type='Pretrained', checkpoint=...)`` all use it.

    Args:
        filename (str): Path of the checkpoint.
        map_location (optional): As in :func:`torch.load`.

    Returns:
        dict: The loaded checkpoint.

    Raises:
        CheckpointNotFoundError: The file does not exist.
        CorruptCheckpointError: The file cannot be read as a checkpoint
            (truncated, corrupt, or not a PyTorch checkpoint).
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise CheckpointNotFoundError(
            f'The checkpoint {filename} does not exist.')
    try:
        return torch.load(
            filename, map_location=map_location, weights_only=False)
    except Exception as e:
        # A well-formed archive that fails to load fails for another reason
        # (e.g. CUDA tensors without a GPU): keep the original error then.
        if _zip_is_intact(filename):
            raise
        size = osp.getsize(filename)
        raise CorruptCheckpointError(
            f'The checkpoint {filename} ({size} bytes) cannot be read: it is '
            'truncated, corrupt or not a PyTorch checkpoint '
            f'({type(e).__name__}: {e}). Use an earlier checkpoint of the '
            'run (epoch_*.pth in the work directory), or train again.') from e


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
