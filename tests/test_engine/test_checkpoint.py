"""Loading checkpoints under torch >= 2.6, clear errors, atomic writes."""
import os

import pytest
import torch
from mmengine.fileio import get_file_backend
from mmengine.logging import HistoryBuffer
from mmengine.runner import CheckpointLoader, load_checkpoint

import mmrevode  # noqa: F401
from mmrevode.engine import (AtomicLocalBackend, CheckpointError,
                             CheckpointNotFoundError, CorruptCheckpointError,
                             UnsafeCheckpointError, atomic_write,
                             find_resume_checkpoint, load_from_local,
                             trust_checkpoints)


class _WritesFile:
    """Unpickling this object creates a file: what a crafted file could do
    instead."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, 'w'))


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


def test_loaders_are_installed_by_one_public_call():
    """``import mmrevode`` calls install_checkpoint_loaders; MMEngine's own
    loaders, registered again, are replaced by the next call."""
    from mmengine.runner.checkpoint import load_from_http

    from mmrevode.engine import install_checkpoint_loaders, load_from_url
    original = CheckpointLoader._get_checkpoint_loader('x.pth')
    CheckpointLoader.register_scheme(
        prefixes=('http://', 'https://'), loader=load_from_http, force=True)
    try:
        assert CheckpointLoader._get_checkpoint_loader('https://x/m.pth') \
            is load_from_http
    finally:
        install_checkpoint_loaders()
    assert CheckpointLoader._get_checkpoint_loader('https://x/m.pth') \
        is load_from_url
    assert CheckpointLoader._get_checkpoint_loader('x.pth') is original \
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


def test_crafted_checkpoint_is_refused(tmp_path):
    path = str(tmp_path / 'crafted.pth')
    marker = tmp_path / 'marker'
    torch.save(dict(state_dict={}, meta=dict(x=_WritesFile(marker))), path)
    with pytest.raises(UnsafeCheckpointError) as info:
        CheckpointLoader.load_checkpoint(path, map_location='cpu')
    assert not marker.exists()
    message = str(info.value)
    assert path in message and '`io.open`' in message
    assert '--trust-checkpoint' in message
    # mmengine's load_checkpoint (Pretrained init) goes the same way
    with pytest.raises(UnsafeCheckpointError):
        load_checkpoint(torch.nn.Linear(3, 2), path, map_location='cpu')
    assert not marker.exists()

    trust_checkpoints()
    try:
        load_from_local(path)
    finally:
        trust_checkpoints(False)
    assert marker.exists()


def test_loads_in_a_fresh_process(tmp_path):
    """Before any HistoryBuffer exists, its methods are still admitted."""
    import subprocess
    import sys
    path = str(tmp_path / 'epoch_1.pth')
    _mmengine_like_checkpoint(path)
    code = ('import mmrevode; from mmrevode.engine import load_from_local; '
            f'print(type(load_from_local({path!r})["message_hub"]'
            '["log_scalars"]["train/loss"]).__name__)')
    result = subprocess.run([sys.executable, '-c', code],
                            capture_output=True, text=True)
    assert result.stdout.strip() == 'HistoryBuffer', result.stderr[-3000:]


def test_import_weakens_no_other_loading(tmp_path):
    """The allowlist applies inside the loader only: torch.load elsewhere
    keeps torch's own defaults."""
    path = str(tmp_path / 'epoch_1.pth')
    _mmengine_like_checkpoint(path)
    before = set(map(repr, torch.serialization.get_safe_globals()))
    load_from_local(path)
    assert set(map(repr, torch.serialization.get_safe_globals())) == before
    assert repr(HistoryBuffer) not in before
    with pytest.raises(Exception, match='HistoryBuffer|weights_only'):
        torch.load(path)


def test_real_runner_checkpoints_need_only_the_table(tmp_path):
    """What MMEngine's Runner saves (optimizer, schedulers, message hub):
    every global it names is in the checkpoint unpickler's table."""
    from engine_utils import ToyRegression
    from mmengine.runner import Runner
    from torch.utils.data import TensorDataset

    from mmrevode.fileio.checkpoint_pickle import Unpickler
    data = TensorDataset(torch.randn(8, 2), torch.randn(8, 1))
    runner = Runner(
        model=ToyRegression(),
        work_dir=str(tmp_path),
        train_dataloader=dict(
            dataset=data,
            batch_size=4,
            sampler=dict(type='DefaultSampler', shuffle=True),
            collate_fn=dict(type='default_collate')),
        train_cfg=dict(by_epoch=True, max_epochs=1),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1,
                                          momentum=0.9)),
        param_scheduler=dict(type='MultiStepLR', milestones=[1]),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook',
                                           interval=1)),
        experiment_name='allowlist')
    runner.train()
    path = str(tmp_path / 'epoch_1.pth')
    needed = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    names = {'.'.join(key) for key in Unpickler.globals}
    assert needed and set(needed) <= names, set(needed) - names
    checkpoint = load_from_local(path)
    assert {'optimizer', 'param_schedulers', 'message_hub'} <= set(checkpoint)


def test_find_resume_checkpoint(tmp_path):
    """The pointer's file in this work directory, never another folder's;
    one error naming what to do where there is none."""
    assert find_resume_checkpoint(str(tmp_path)) is None
    pointer = tmp_path / 'last_checkpoint'
    (tmp_path / 'epoch_3.pth').write_bytes(b'')
    # relative (older runs), absolute, with a newline
    for written in ('epoch_3.pth', str(tmp_path / 'epoch_3.pth') + '\n'):
        pointer.write_text(written)
        assert find_resume_checkpoint(str(tmp_path)) == str(
            tmp_path / 'epoch_3.pth')
    # into another folder (a moved or copied work dir), absolute or
    # relative: this folder's file of the same name
    for written in ('/elsewhere/epoch_3.pth', '../elsewhere/epoch_3.pth'):
        pointer.write_text(written)
        assert find_resume_checkpoint(str(tmp_path)) == str(
            tmp_path / 'epoch_3.pth')
    # a remote checkpoint as written
    pointer.write_text('s3://bucket/run/epoch_3.pth')
    assert find_resume_checkpoint(
        str(tmp_path)) == 's3://bucket/run/epoch_3.pth'
    # no such file here: never the other folder's
    (tmp_path / 'epoch_3.pth').unlink()
    for written in ('/elsewhere/epoch_3.pth', 'epoch_3.pth',
                    str(tmp_path / 'epoch_3.pth')):
        pointer.write_text(written)
        with pytest.raises(CheckpointError) as info:
            find_resume_checkpoint(str(tmp_path))
        assert str(info.value) == (
            f'{pointer} names {written}, and {tmp_path} has no '
            'epoch_3.pth (a partial copy, or a deleted checkpoint?). Give '
            'the checkpoint to resume from: --resume PATH, or '
            'load_from=PATH with resume=True.')
    pointer.write_text(' \n')
    with pytest.raises(CheckpointError, match='is empty'):
        find_resume_checkpoint(str(tmp_path))


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
    """A well-formed file that fails for another reason is not 'corrupt':
    GPU tensors without a GPU are named as such, in one line."""
    path = str(tmp_path / 'ok.pth')
    _mmengine_like_checkpoint(path)

    def failing_load(*args, **kwargs):
        raise RuntimeError('Attempting to deserialize object on CUDA')

    monkeypatch.setattr(torch, 'load', failing_load)
    with pytest.raises(CheckpointError, match='GPU tensors') as info:
        load_from_local(path)
    assert not isinstance(info.value, CorruptCheckpointError)
    assert "map_location='cpu'" in str(info.value)
    assert '\n' not in str(info.value)


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


def test_downloaded_checkpoints_go_through_the_safe_loader(tmp_path,
                                                           monkeypatch):
    """MMEngine's own http(s) loader unpickles downloads with
    weights_only=False; the registered one downloads, then loads as a
    local file."""
    import functools
    import http.server
    import threading

    from mmrevode.engine import load_from_url
    assert CheckpointLoader._get_checkpoint_loader('https://x/m.pth') \
        is load_from_url
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    served = tmp_path / 'served'
    served.mkdir()
    marker = tmp_path / 'marker'
    torch.save(dict(state_dict={'w': torch.ones(2)}), served / 'good.pth')
    torch.save(dict(state_dict={}, x=_WritesFile(marker)),
               served / 'crafted.pth')
    server = http.server.HTTPServer(('127.0.0.1', 0), functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=str(served)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f'http://127.0.0.1:{server.server_port}'
    try:
        good = CheckpointLoader.load_checkpoint(f'{url}/good.pth')
        assert torch.equal(good['state_dict']['w'], torch.ones(2))
        with pytest.raises(UnsafeCheckpointError, match='io.open'):
            CheckpointLoader.load_checkpoint(f'{url}/crafted.pth')
    finally:
        server.shutdown()
    assert not marker.exists()
    assert (tmp_path / 'torch_home' / 'hub' / 'checkpoints' /
            'good.pth').is_file()


def test_tensors_without_data_are_refused(tmp_path):
    """A tensor stored for the meta device has no values; loaded without a
    map_location, MMEngine would keep the model's weights and only log."""
    import zipfile
    real = str(tmp_path / 'real.pth')
    torch.save(dict(state_dict={'w': torch.ones(2)}), real)
    path = str(tmp_path / 'meta.pth')
    with zipfile.ZipFile(real) as src, zipfile.ZipFile(path, 'w') as dst:
        for name in src.namelist():
            data = src.read(name)
            if name.endswith('data.pkl'):  # the storage's location
                data = data.replace(b'X\x03\x00\x00\x00cpu',
                                    b'X\x04\x00\x00\x00meta')
            dst.writestr(name, data)
    with pytest.raises(UnsafeCheckpointError, match='meta device'):
        load_from_local(path)
    # mapped to the CPU it has values
    assert load_from_local(path, map_location='cpu')['state_dict']['w'].equal(
        torch.ones(2))


def test_config_text_of_the_meta_is_not_kept(tmp_path):
    """MMEngine's Runner.resume runs meta['config'] as a Python config."""
    path = str(tmp_path / 'config.pth')
    marker = tmp_path / 'marker'
    torch.save(dict(state_dict={}, meta=dict(
        epoch=1, config=f'open({str(marker)!r}, "w")')), path)
    checkpoint = load_from_local(path)
    assert 'config' not in checkpoint['meta']
    assert checkpoint['meta']['epoch'] == 1
    assert not marker.exists()


BFLOAT16_LOGS = torch.ones(2, dtype=torch.bfloat16)


@pytest.mark.parametrize('hub, phrase', [
    (dict(log_scalars={'loss': dict(log_history=BFLOAT16_LOGS,
                                    count_history=torch.ones(2),
                                    max_length=5)}), 'log buffer loss'),
    (dict(log_scalars={'loss': dict(log_history=torch.ones(2),
                                    count_history=torch.ones(3),
                                    max_length=5)}), 'log buffer loss'),
    (dict(log_scalars=[1]), 'no log_scalars dict'),
])
def test_plain_message_hub_that_does_not_fit(tmp_path, hub, phrase):
    from mmrevode.engine.checkpoint import PLAIN_LOG_SCALARS
    path = str(tmp_path / 'hub.pth')
    torch.save(dict(message_hub=dict(hub, log_scalars_format=PLAIN_LOG_SCALARS,
                                     runtime_info={}, resumed_keys={})),
               path)
    with pytest.raises(CorruptCheckpointError, match=phrase) as info:
        load_from_local(path)
    assert path in str(info.value)


def test_message_hub_round_trip(tmp_path):
    """What SafeCheckpointHook writes needs no foreign class and comes back
    as equal HistoryBuffers."""
    from mmrevode.engine import plain_message_hub
    buffer = HistoryBuffer([1.0, 2.5, 4.0], [1, 2, 1], max_length=7)
    checkpoint = plain_message_hub(dict(message_hub=dict(
        log_scalars={'train/loss': buffer}, runtime_info={}, resumed_keys={})))
    path = str(tmp_path / 'hub.pth')
    torch.save(checkpoint, path)
    assert torch.serialization.get_unsafe_globals_in_checkpoint(path) == []
    loaded = load_from_local(path)['message_hub']['log_scalars']['train/loss']
    assert isinstance(loaded, HistoryBuffer) and loaded.max_length == 7
    for got, expected in zip(loaded.data, buffer.data):
        assert got.dtype == expected.dtype and (got == expected).all()
