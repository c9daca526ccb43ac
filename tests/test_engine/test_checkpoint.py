"""Loading checkpoints under torch >= 2.6, clear errors, atomic writes."""
import os

import pytest
import torch
from mmengine.fileio import get_file_backend
from mmengine.logging import HistoryBuffer
from mmengine.runner import CheckpointLoader, load_checkpoint

import mmrevode  # noqa: F401
from mmrevode.engine import (AtomicLocalBackend, CheckpointNotFoundError,
                             CorruptCheckpointError, atomic_write,
                             load_from_local)


def _mmengine_like_checkpoint(path):
    """What MMEngine's Runner saves: a message hub with a HistoryBuffer."""
    model = torch.nn.Linear(3, 2)
    checkpoint = dict(
        meta=dict(epoch=1),
        state_dict=model.state_dict(),
        message_hub=dict(
            log_scalars={'train/loss': HistoryBuffer([1.0], [1])}))
    torch.save(checkpoint, path)
    return model


def test_local_loader_is_registered():
    assert CheckpointLoader._get_checkpoint_loader('x.pth') is load_from_local
    assert CheckpointLoader._get_checkpoint_loader('/a/b.pth') \
        is load_from_local


def test_loads_mmengine_checkpoints(tmp_path):
    path = str(tmp_path / 'epoch_1.pth')
    model = _mmengine_like_checkpoint(path)
    # torch's own default refuses the pickled HistoryBuffer
    with pytest.raises(Exception, match='HistoryBuffer|weights_only'):
        torch.load(path)
    checkpoint = CheckpointLoader.load_checkpoint(path, map_location='cpu')
    assert isinstance(checkpoint['message_hub']['log_scalars']['train/loss'],
                      HistoryBuffer)
    other = torch.nn.Linear(3, 2)
    load_checkpoint(other, path, map_location='cpu')
    assert torch.equal(other.weight, model.weight)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointNotFoundError, match='does not exist'):
        load_from_local(str(tmp_path / 'nothing.pth'))
    with pytest.raises(FileNotFoundError):
        load_from_local(str(tmp_path / 'nothing.pth'))


@pytest.mark.parametrize('damage', ['truncate', 'empty', 'garbage'])
def test_corrupt_checkpoint(tmp_path, damage):
    path = tmp_path / 'epoch_1.pth'
    _mmengine_like_checkpoint(str(path))
    data = path.read_bytes()
    if damage == 'truncate':
        path.write_bytes(data[:len(data) // 2])
    elif damage == 'empty':
        path.write_bytes(b'')
    else:
        path.write_bytes(b'not a checkpoint at all' * 10)
    with pytest.raises(CorruptCheckpointError) as info:
        CheckpointLoader.load_checkpoint(str(path), map_location='cpu')
    message = str(info.value)
    assert str(path) in message
    assert 'truncated, corrupt or not a PyTorch checkpoint' in message


def test_intact_checkpoint_keeps_its_own_error(tmp_path, monkeypatch):
    """A well-formed file that fails for another reason is not 'corrupt'."""
    path = str(tmp_path / 'ok.pth')
    _mmengine_like_checkpoint(path)

    def failing_load(*args, **kwargs):
        raise RuntimeError('Attempting to deserialize object on CUDA')

    monkeypatch.setattr(torch, 'load', failing_load)
    with pytest.raises(RuntimeError, match='CUDA') as info:
        load_from_local(path)
    assert not isinstance(info.value, CorruptCheckpointError)


def test_atomic_write_replaces_whole_or_not_at_all(tmp_path, monkeypatch):
    path = tmp_path / 'sub' / 'file.bin'
    atomic_write(b'first', str(path))
    assert path.read_bytes() == b'first'
    atomic_write('second', str(path))
    assert path.read_text() == 'second'

    def disk_full(fd):
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(os, 'fsync', disk_full)
    with pytest.raises(OSError, match='No space'):
        atomic_write(b'x' * 1000, str(path))
    monkeypatch.undo()
    assert path.read_text() == 'second'
    assert os.listdir(tmp_path / 'sub') == ['file.bin']  # no temporary left


def test_atomic_backend(tmp_path):
    backend = get_file_backend(
        str(tmp_path), backend_args=dict(backend='atomic_local'))
    assert isinstance(backend, AtomicLocalBackend)
    target = backend.join_path(str(tmp_path), 'a.txt')
    backend.put_text('hello', target)
    backend.put(b'bytes', backend.join_path(str(tmp_path), 'b.bin'))
    assert backend.get_text(target) == 'hello'
    assert sorted(os.listdir(tmp_path)) == ['a.txt', 'b.bin']
