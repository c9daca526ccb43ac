"""Loading and saving checkpoints safely with MMEngine 0.10.

- :func:`install_checkpoint_loaders` (called by ``import mmrevode``) makes
  :func:`load_from_local` MMEngine's loader for local files (and
  :func:`load_from_url`, which downloads and then loads the same way, for
  ``http://`` and ``https://``), so ``load_from``, ``resume``,
  ``tools/test.py`` and ``init_cfg=dict(type='Pretrained')`` all use it.
  :func:`load_from_local` reads the archive with
  :func:`torch.load` and the object tree with
  :mod:`mmrevode.fileio.checkpoint_pickle`, an unpickler that builds
  tensors, containers, NumPy numbers and MMEngine's log buffers from data
  and calls nothing the file names: loading a file cannot run code or change
  anything but the checkpoint being built. (MMEngine 0.10.7 calls
  ``torch.load`` with torch's default, which refuses the ``HistoryBuffer`` of
  its own checkpoints since torch 2.6.) A file that asks for anything else
  is refused with :class:`UnsafeCheckpointError`, which names it;
  :func:`trust_checkpoints` (``--trust-checkpoint`` of the tools) loads such
  files with ``weights_only=False``, for files you trust only.
- importing this module registers the file backend ``'atomic_local'``
  (:class:`AtomicLocalBackend`), which writes a file to a temporary name in
  the same folder and renames it into place, so a failed or interrupted
  write never leaves a partial file under the final name nor replaces an
  earlier file.

Checkpoints saved through :class:`SafeCheckpointHook` hold the message hub's
log buffers as tensors (:func:`plain_message_hub`), so they need no foreign
class at all; :func:`load_from_local` turns them back into ``HistoryBuffer``
objects (:func:`restore_message_hub`).
"""

import io
import os
import os.path as osp
import re
import zipfile
from typing import Optional, Union

import numpy as np
import torch
from mmengine.fileio import LocalBackend, register_backend
from mmengine.logging import HistoryBuffer, print_log
from mmengine.runner import CheckpointLoader

from ..fileio import UnsafePickleError, checkpoint_pickle


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used. Base of the errors below."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The checkpoint file does not exist."""


class CorruptCheckpointError(CheckpointError):
    """The checkpoint file exists but is truncated, corrupt or not one."""


class UnsafeCheckpointError(CheckpointError):
    """The checkpoint asks for more than data to be loaded."""


_trusted = False


def trust_checkpoints(trusted: bool = True) -> None:
    """Load every checkpoint of this process with ``weights_only=False``.

    For checkpoints you made or trust that hold objects the safe loader does
    not read. Loading such a file runs whatever code it names: never use
    this for files from others. ``tools/train.py`` and ``tools/test.py``
    call it for ``--trust-checkpoint``.

    Args:
        trusted (bool): Turn trusted loading on or off. Defaults to True.
    """
    global _trusted
    _trusted = bool(trusted)


def _one_line(text: str, limit: int = 300) -> str:
    text = ' '.join(str(text).split())
    return text if len(text) <= limit else text[:limit] + '...'


#: Member names of a torch archive: ``<folder>/<path>``, no ``..``.
_MEMBER_NAME = re.compile(r'[A-Za-z0-9_\-][A-Za-z0-9_.\-]*'
                          r'(/[A-Za-z0-9_.\-]+)+')


def _read_archive(filename: str) -> io.BytesIO:
    """The checkpoint's archive, checked and written anew for ``torch.load``.

    Refused: no zip archive (the legacy format, or not a checkpoint),
    compressed members (torch.save stores them; a compressed member could
    unpack to any size), odd member names, a TorchScript archive (which
    ``torch.load`` would pass on to ``torch.jit.load``). The members that
    were checked are written into a new archive in memory, which is what
    ``torch.load`` reads: its own zip reader may find another member list
    in the same bytes than Python's does (two central directories), and
    must see only the checked one.
    """
    buffer = io.BytesIO()
    try:
        with zipfile.ZipFile(filename) as archive:
            infos = archive.infolist()
            compressed = [
                info.filename for info in infos
                if info.compress_type != zipfile.ZIP_STORED
            ]
            if not compressed:
                _check_names(filename, [info.filename for info in infos])
                # each member is read (its CRC checked) and copied at once
                with zipfile.ZipFile(buffer, 'w', zipfile.ZIP_STORED) as copy:
                    for info in infos:
                        copy.writestr(info.filename, archive.read(info))
    except CheckpointError:
        raise
    except Exception as e:  # BadZipFile, OSError, NotImplementedError, ...
        raise CorruptCheckpointError(
            f'The checkpoint {filename} ({osp.getsize(filename)} bytes) '
            'cannot be read: it is truncated, corrupt or not a PyTorch '
            'checkpoint (not a zip archive as torch.save writes it; the '
            f'legacy format of torch < 1.6 is not read: {_one_line(e)}). '
            'Use an earlier checkpoint of the run '
            '(epoch_*.pth in the work directory), or train again.') from None
    if compressed:
        raise CorruptCheckpointError(
            f'The checkpoint {filename} is not an archive as torch.save '
            f'writes it: compressed members '
            f'{_one_line(repr(compressed), 120)}. It was refused.')
    buffer.seek(0)
    return buffer


def _check_names(filename: str, names: list) -> None:
    folders = {name.split('/', 1)[0] for name in names}
    bad = [
        name for name in names if not _MEMBER_NAME.fullmatch(name)
        or '..' in name.split('/')
    ]
    if bad or len(folders) != 1:
        raise CorruptCheckpointError(
            f'The checkpoint {filename} is not an archive as torch.save '
            f'writes it: member names {_one_line(repr(bad or names), 120)}. '
            'It was refused.')
    folder = folders.pop()
    if f'{folder}/constants.pkl' in names or any(
            name.startswith(f'{folder}/code/') for name in names):
        raise UnsafeCheckpointError(
            f'The checkpoint {filename} is a TorchScript archive, which holds '
            'code; it was refused. Load it with torch.jit.load if you trust '
            'its source.')
    if f'{folder}/data.pkl' not in names:
        raise CorruptCheckpointError(
            f'The checkpoint {filename} has no {folder}/data.pkl: it is not '
            'a checkpoint torch.save wrote.')


def _load_data(filename: str, map_location):
    """``torch.load`` with the checkpoint unpickler; errors as one line."""
    archive = _read_archive(filename)
    try:
        return torch.load(
            archive,
            map_location=map_location,
            pickle_module=checkpoint_pickle)
    except UnsafePickleError as e:
        raise UnsafeCheckpointError(
            f'The checkpoint {filename} was refused: it asks for '
            f'{_one_line(e)}. Checkpoints of MMEngine, MMPretrain and '
            'mmrevode hold weights, optimizer and scheduler states, NumPy '
            'numbers and log buffers, and nothing else is loaded, since it '
            'could run code. If you made the file or trust its source, load '
            'it with --trust-checkpoint (tools/train.py, tools/test.py) or '
            '`mmrevode.engine.trust_checkpoints()`.') from None
    except Exception as e:
        # the archive is intact (every member passed its CRC above)
        if 'CUDA' in str(e):
            raise CheckpointError(
                f'The checkpoint {filename} holds GPU tensors and this '
                'machine has no GPU: load it with map_location=\'cpu\' '
                f'({_one_line(e, 160)}).') from None
        reason = 'nested too deeply' if isinstance(e, RecursionError) \
            else f'{type(e).__name__}: {_one_line(e, 200)}'
        raise CorruptCheckpointError(
            f'The checkpoint {filename} ({osp.getsize(filename)} bytes) '
            f'cannot be read: it is truncated, corrupt or not a PyTorch '
            f'checkpoint ({reason}). Use an earlier checkpoint of the run '
            '(epoch_*.pth in the work directory), or train again.') from None


def load_from_local(filename: str, map_location=None):
    """Load a local checkpoint without running code from it.

    The archive is read by :func:`torch.load`, its object tree by
    :mod:`mmrevode.fileio.checkpoint_pickle`; with :func:`trust_checkpoints`
    on, ``weights_only=False`` and a warning in the log. Registered as
    MMEngine's loader for paths without a scheme prefix.

    Args:
        filename (str): Path of the checkpoint.
        map_location (optional): As in :func:`torch.load`.

    Returns:
        dict: The loaded checkpoint, with the message hub's log buffers as
        ``HistoryBuffer`` objects.

    Raises:
        CheckpointNotFoundError: The file does not exist.
        UnsafeCheckpointError: The file asks for more than data.
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
        checkpoint = torch.load(
            filename, map_location=map_location, weights_only=False)
    else:
        checkpoint = _load_data(filename, map_location)
        _drop_config_text(checkpoint, filename)
    try:
        return restore_message_hub(checkpoint)
    except CorruptCheckpointError as e:
        raise CorruptCheckpointError(
            f'The checkpoint {filename} cannot be read: {e}') from None


def _drop_config_text(checkpoint, filename: str) -> None:
    """Drop ``meta['config']``: MMEngine's ``Runner.resume`` runs it as a
    Python config file (``Config.fromstring``). Checkpoints of MMCV 1.x
    stored their config there; MMEngine's store it as ``meta['cfg']``,
    which nothing runs."""
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    if isinstance(meta, dict) and 'config' in meta:
        del meta['config']
        print_log(
            f"{filename}: meta['config'] was not kept (MMEngine's resume "
            'would run it as Python).',
            logger='current',
            level=30)


#: Marks a message hub whose log buffers :func:`plain_message_hub` wrote.
PLAIN_LOG_SCALARS = 'mmrevode.plain_log_scalars.v1'


def plain_message_hub(checkpoint: dict) -> dict:
    """Write the message hub's ``HistoryBuffer`` objects as tensors.

    ``checkpoint['message_hub']['log_scalars'][key]`` becomes
    ``dict(log_history=Tensor, count_history=Tensor, max_length=int)``, so
    the file holds no class of MMEngine. :func:`restore_message_hub` reverses
    it. Changes ``checkpoint`` in place and returns it.
    """
    hub = checkpoint.get('message_hub') if isinstance(checkpoint,
                                                      dict) else None
    if not isinstance(hub, dict) or not isinstance(
            hub.get('log_scalars'), dict):
        return checkpoint
    scalars = {}
    for key, buffer in hub['log_scalars'].items():
        if not isinstance(buffer, HistoryBuffer):
            scalars[key] = buffer
            continue
        logs, counts = buffer.data
        scalars[key] = dict(
            log_history=torch.from_numpy(np.asarray(logs).copy()),
            count_history=torch.from_numpy(np.asarray(counts).copy()),
            max_length=int(buffer.max_length))
    hub['log_scalars'] = scalars
    hub['log_scalars_format'] = PLAIN_LOG_SCALARS
    return checkpoint


def restore_message_hub(checkpoint):
    """Turn log buffers written by :func:`plain_message_hub` back into
    ``HistoryBuffer`` objects (through its constructor)."""
    hub = checkpoint.get('message_hub') if isinstance(checkpoint,
                                                      dict) else None
    marker = hub.get('log_scalars_format') if isinstance(hub, dict) else None
    if not (isinstance(marker, str) and marker == PLAIN_LOG_SCALARS):
        return checkpoint
    if not isinstance(hub.get('log_scalars'), dict):
        raise CorruptCheckpointError('its message hub has no log_scalars '
                                     'dict')
    scalars = {}
    for key, value in hub['log_scalars'].items():
        if isinstance(value, dict) and set(value) == {
                'log_history', 'count_history', 'max_length'}:
            logs, counts = value['log_history'], value['count_history']
            if not (all(
                    type(t) is torch.Tensor and t.dim() == 1 and t.dtype in (
                        torch.float64, torch.float32, torch.int64)
                    for t in (logs, counts))
                    and len(logs) == len(counts)
                    and type(value['max_length']) is int
                    and value['max_length'] > 0):
                raise CorruptCheckpointError(
                    f'the log buffer {_one_line(key, 60)} of its message hub '
                    'is not two equal-length 1-d tensors and a length')
            value = HistoryBuffer(logs.detach().cpu().numpy(),
                                  counts.detach().cpu().numpy(),
                                  value['max_length'])
        scalars[key] = value
    hub['log_scalars'] = scalars
    del hub['log_scalars_format']
    return checkpoint


def load_from_url(url: str, map_location=None, model_dir=None):
    """Download a checkpoint (once, into torch's hub cache) and load it with
    :func:`load_from_local`.

    Registered as MMEngine's loader for ``http://`` and ``https://``, whose
    own loader unpickles downloaded files with ``weights_only=False``. In a
    distributed run, rank 0 downloads first.

    Args:
        url (str): The address of the checkpoint.
        map_location (optional): As in :func:`torch.load`.
        model_dir (str, optional): Where to keep the download. Defaults to
            ``<torch.hub.get_dir()>/checkpoints``.
    """
    from urllib.parse import urlparse

    from mmengine.dist import barrier, get_dist_info
    model_dir = model_dir or osp.join(torch.hub.get_dir(), 'checkpoints')
    path = osp.join(model_dir, osp.basename(urlparse(url).path))
    rank, world_size = get_dist_info()
    for turn in (0, 1):
        if (rank == 0) == (turn == 0) and not osp.isfile(path):
            os.makedirs(model_dir, exist_ok=True)
            torch.hub.download_url_to_file(url, path, progress=False)
        if world_size > 1 and turn == 0:
            barrier()
    return load_from_local(path, map_location=map_location)


def install_checkpoint_loaders() -> None:
    """Make :func:`load_from_local` MMEngine's loader of local paths, and
    :func:`load_from_url` its loader of ``http://`` and ``https://``.

    Registered with ``CheckpointLoader.register_scheme(..., force=True)``,
    MMEngine's registration point: for the whole process, so for every
    library that loads through MMEngine (``load_from``, ``resume``,
    ``init_cfg=dict(type='Pretrained')``, MMPretrain's and MMDetection's
    tools), not only for mmrevode's models. ``import mmrevode`` calls it
    once, so configs that only name ``custom_imports=['mmrevode']`` load
    safely too. Calling it again changes nothing. :func:`trust_checkpoints`
    (``--trust-checkpoint``) keeps these loaders but makes them load with
    ``weights_only=False``.
    """
    CheckpointLoader.register_scheme(
        prefixes='', loader=load_from_local, force=True)
    CheckpointLoader.register_scheme(
        prefixes=('http://', 'https://'), loader=load_from_url, force=True)


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


def checkpoint_dir(work_dir: str, out_dir: Optional[str] = None) -> str:
    """The folder a ``CheckpointHook`` with ``out_dir`` saves into:
    ``work_dir`` when ``out_dir`` is unset or is ``work_dir``, else
    ``out_dir/<work_dir's name>`` (as MMEngine's ``before_train`` joins
    them)."""
    if out_dir is None or out_dir == work_dir:
        return work_dir
    return osp.join(out_dir, osp.basename(work_dir.rstrip(osp.sep)))


def find_resume_checkpoint(work_dir: str,
                           out_dir: Optional[str] = None) -> Union[str, None]:
    """The checkpoint that ``--resume`` without a path continues from.

    Reads ``<work_dir>/last_checkpoint`` (MMEngine writes it there wherever
    the checkpoints go). A relative path in it is relative to ``work_dir``.
    A local path that lies outside the checkpoint folder (``work_dir``, or
    ``out_dir/<work_dir's name>``; a work directory that was moved or
    copied) is replaced by the file of the same name in the checkpoint
    folder, so a run resumes from its own checkpoints, never from another
    folder's. A remote path (``s3://...``) is returned as written.

    Args:
        work_dir (str): The work directory.
        out_dir (str, optional): The checkpoint hook's ``out_dir``.
            Defaults to None (checkpoints in ``work_dir``).

    Returns:
        str | None: The checkpoint's path, or None if the work directory has
        no ``last_checkpoint``.

    Raises:
        CheckpointError: ``last_checkpoint`` is empty, or the checkpoint
            folder has no file of the name it holds (a partial copy, a
            deleted checkpoint).
    """
    pointer = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(pointer):
        return None
    with open(pointer) as f:
        written = f.read().strip()
    what_to_do = ('Give the checkpoint to resume from: --resume PATH, or '
                  'load_from=PATH with resume=True.')
    if not written:
        raise CheckpointError(
            f'{pointer} is empty (a run stopped while writing it?). '
            f'{what_to_do}')
    if '://' in written:
        return written
    folder = checkpoint_dir(work_dir, out_dir)
    path = osp.join(work_dir, written)  # an absolute path as it is
    if osp.realpath(osp.dirname(path)) != osp.realpath(folder):
        path = osp.join(folder, osp.basename(path))
    if not osp.isfile(path):
        raise CheckpointError(
            f'{pointer} names {written}, and {folder} has no '
            f'{osp.basename(path)} (a partial copy, or a deleted '
            f'checkpoint?). {what_to_do}')
    return path
