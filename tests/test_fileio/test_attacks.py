"""Every crafted file of the corpus, on every in-process load path.

For checkpoints: mmrevode's loader, MMEngine's ``CheckpointLoader``,
``_load_checkpoint`` and ``load_checkpoint`` (what ``load_from``,
``resume``, ``Pretrained`` and the tools call); for data-set pickles: the
pickle reader and the CIFAR data set. Each file is refused with one line
that names it; no payload runs (no marker file); MMEngine's
``HistoryBuffer`` class state is the same afterwards; nothing crashes (the
whole corpus also runs in a fresh process, whose exit status would show a
signal). The tools' own paths are in tests/test_tools/test_safety.py.
"""
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from corpus import checkpoint_files, data_files, real_checkpoint
from mmengine.logging import HistoryBuffer
from mmengine.runner import CheckpointLoader, load_checkpoint
from mmengine.runner.checkpoint import _load_checkpoint

import mmrevode  # noqa: F401
from mmrevode.datasets import DatasetError
from mmrevode.datasets.safe_pickle import load_data_pickle
from mmrevode.engine import CheckpointError, load_from_local

HERE = osp.dirname(osp.abspath(__file__))


@pytest.fixture(scope='module')
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp('corpus')
    marker = folder / 'created_by_a_payload'
    return dict(
        marker=marker,
        checkpoints=checkpoint_files(str(folder), marker),
        data=data_files(str(folder), marker))


CHECKPOINT_PATHS = {
    'mmrevode load_from_local':
    lambda path: load_from_local(path, map_location='cpu'),
    'CheckpointLoader.load_checkpoint':
    lambda path: CheckpointLoader.load_checkpoint(path, map_location='cpu'),
    'mmengine _load_checkpoint':
    lambda path: _load_checkpoint(path, map_location='cpu'),
    'mmengine load_checkpoint into a model':
    lambda path: load_checkpoint(torch.nn.Linear(2, 2), path,
                                 map_location='cpu'),
}


def _statistics_state():
    return dict(HistoryBuffer._statistics_methods)


def test_corpus_covers_every_class(corpus):
    kinds = {kind for kind, _ in corpus['checkpoints']}
    assert kinds == {
        'outside the table', 'state poisoning',
        'torch rebuild with a foreign callable', 'numpy',
        'containers and opcodes', 'archive', 'truncation'
    }
    assert len(corpus['checkpoints']) > 80


def test_real_checkpoint_loads_as_torch_loads_it(corpus, tmp_path):
    """The corpus's base file is a real checkpoint that loads: refusals
    below come from the attacks, not from the base."""
    path = str(tmp_path / 'real.pth')
    torch.save(real_checkpoint(), path)
    loaded = load_from_local(path)
    reference = torch.load(path, weights_only=False)  # made here
    assert list(loaded) == list(reference)
    for key, value in reference['state_dict'].items():
        assert torch.equal(loaded['state_dict'][key], value)
    assert loaded['state_dict']._metadata == reference['state_dict']._metadata
    buffer = loaded['message_hub']['log_scalars']['train/loss']
    assert isinstance(buffer, HistoryBuffer) and buffer.mean() == 1.25
    assert loaded['param_schedulers'][0]['milestones'] == \
        reference['param_schedulers'][0]['milestones']
    assert loaded['optimizer']['state'][0]['momentum_buffer'].equal(
        reference['optimizer']['state'][0]['momentum_buffer'])


@pytest.mark.parametrize('load_path', list(CHECKPOINT_PATHS))
def test_crafted_checkpoints_are_refused(corpus, load_path):
    load = CHECKPOINT_PATHS[load_path]
    before = _statistics_state()
    loaded = []
    for (kind, name), path in corpus['checkpoints'].items():
        try:
            load(path)
        except CheckpointError as e:
            message = str(e)
            assert '\n' not in message, (name, message)
            assert path in message, (name, message)
        else:
            loaded.append(name)
        assert not corpus['marker'].exists(), (kind, name)
        assert _statistics_state() == before, (kind, name)
    assert not loaded, f'loaded without error: {loaded}'


def test_refusals_name_what_was_asked_for(corpus):
    files = corpus['checkpoints']
    expected = {
        ('outside the table', 'os.system'): 'the global `os.system`',
        ('state poisoning', 'getattr HistoryBuffer.__init__'):
        "getattr(HistoryBufferRecord, '__init__')",
        ('torch rebuild with a foreign callable',
         '_rebuild_from_type_v2(eval, ...)'): 'the global `builtins.eval`',
        ('numpy', 'dtype with numeric fields'): 'a dtype with fields',
        ('numpy', 'dtype with object fields (the crash gadget)'):
        "the dtype 'O'",
        ('archive', 'TorchScript archive (code)'): 'TorchScript',
        ('archive', 'member name with ..'): 'member names',
        ('truncation', 'file cut at 50%'): 'truncated, corrupt',
    }
    for key, phrase in expected.items():
        with pytest.raises(CheckpointError) as info:
            load_from_local(files[key])
        assert phrase in str(info.value), str(info.value)


def test_crafted_data_pickles_are_refused(corpus):
    before = _statistics_state()
    for (kind, name), path in corpus['data'].items():
        with open(path, 'rb') as f:
            data = f.read()
        with pytest.raises(DatasetError) as info:
            load_data_pickle(data, path)
        assert '\n' not in str(info.value) and path in str(info.value)
        assert not corpus['marker'].exists(), (kind, name)
        assert _statistics_state() == before, (kind, name)


def test_crafted_data_pickles_through_the_cifar_data_set(corpus, tmp_path):
    """The whole data-set class, with ``verify_md5=False`` (the documented
    way to read your own data), on the crash gadget and a code payload."""
    import numpy as np

    from mmrevode.datasets import CheckedCIFAR10, write_cifar10
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8)
    for key in (('numpy', 'dtype with object fields (the crash gadget)'),
                ('outside the table', 'builtins.eval'),
                ('numpy', 'scalar of object dtype')):
        root = tmp_path / f'cifar_{len(os.listdir(tmp_path))}'
        write_cifar10(str(root), images, np.arange(10), images,
                      np.arange(10))
        batch = root / 'cifar-10-batches-py' / 'data_batch_1'
        batch.write_bytes(open(corpus['data'][key], 'rb').read())
        with pytest.raises(DatasetError) as info:
            CheckedCIFAR10(data_root=str(root), verify_md5=False)
        assert str(batch) in str(info.value)
        assert not corpus['marker'].exists()


def test_whole_corpus_in_a_fresh_process(corpus):
    """No signal (segfault) and no payload in a process that loads every
    file, after only ``import mmrevode`` (MMEngine's own loader)."""
    files = list(corpus['checkpoints'].values())
    data = list(corpus['data'].values())
    code = f"""
import mmrevode
from mmengine.runner import CheckpointLoader
from mmrevode.datasets.safe_pickle import load_data_pickle
refused = 0
for path in {files!r}:
    try:
        CheckpointLoader.load_checkpoint(path, map_location='cpu')
    except mmrevode.engine.CheckpointError:
        refused += 1
for path in {data!r}:
    try:
        load_data_pickle(open(path, 'rb').read(), path)
    except mmrevode.datasets.DatasetError:
        refused += 1
print('refused', refused)
"""
    result = subprocess.run([sys.executable, '-c', code],
                            capture_output=True,
                            text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f'refused {len(files) + len(data)}' in result.stdout
    assert not corpus['marker'].exists()


class _TorchScriptPayload(torch.nn.Module):
    """TorchScript whose ``__setstate__`` runs when torch.jit.load reads it."""

    def __init__(self):
        super().__init__()
        self.x = 1

    def forward(self, x):
        return x

    @torch.jit.export
    def __getstate__(self):
        return (self.x, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[int, bool]):
        print('TorchScript of the file ran')
        self.x = state[0]
        self.training = state[1]


def test_torchscript_behind_a_second_central_directory(tmp_path, capfd):
    """Python's zipfile and torch's reader can find different member lists
    in one file; torch.load only ever reads the checked members."""
    import io

    from corpus import two_directory_archive
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(_TorchScriptPayload()), buffer)
    path = two_directory_archive(buffer.getvalue(), tmp_path / 'two.pth')
    # torch's own reader sees the TorchScript archive
    records = torch._C.PyTorchFileReader(open(path, 'rb')).get_all_records()
    assert 'constants.pkl' in records
    with pytest.raises(CheckpointError):
        CheckpointLoader.load_checkpoint(path, map_location='cpu')
    assert 'TorchScript of the file ran' not in capfd.readouterr().out


def test_memo_keys_are_bounded():
    """Text PUT keys are unbounded ints; keys chosen to collide would make
    the memo quadratic."""
    from mmrevode.fileio import UnsafePickleError, loads
    from mmrevode.fileio.checkpoint_pickle import Unpickler
    key = str(2**61 - 1).encode()
    data = b'\x80\x02N' + b'p' + key + b'\n.'
    with pytest.raises(UnsafePickleError, match='memo key'):
        loads(data, Unpickler)
