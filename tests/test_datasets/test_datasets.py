"""STL-10 and CIFAR readers on files written in the release formats."""
import os
import os.path as osp
import pickle

import numpy as np
import pytest
from mmpretrain.registry import DATASETS

import mmrevode  # noqa: F401
from mmrevode.datasets import (STL10, CheckedCIFAR10, CheckedCIFAR100,
                               DatasetError, DatasetNotFoundError,
                               write_cifar10, write_cifar100, write_stl10)


def _images(rng, n, size):
    return rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_registered():
    for name in ('STL10', 'CheckedCIFAR10', 'CheckedCIFAR100',
                 'ClassBalancedSubset'):
        assert DATASETS.get(name) is not None, name


# -- STL-10 -------------------------------------------------------------------
def test_stl10_binary_layout(tmp_path, rng):
    """Planes are column-major on disk; labels are 1-based bytes."""
    train = _images(rng, 20, 96)
    train_labels = np.arange(20) % 10
    test = _images(rng, 10, 96)
    write_stl10(str(tmp_path), train, train_labels, test, np.arange(10))
    folder = tmp_path / 'stl10_binary'
    raw = np.fromfile(folder / 'train_X.bin', dtype=np.uint8)
    assert raw.size == 20 * 3 * 96 * 96
    # pixel (row 5, column 7) of channel 1 of image 3, read by hand
    offset = 3 * 3 * 96 * 96 + 1 * 96 * 96 + 7 * 96 + 5
    assert raw[offset] == train[3, 5, 7, 1]
    assert list(np.fromfile(folder / 'train_y.bin', dtype=np.uint8)[:3]) \
        == [1, 2, 3]

    dataset = STL10(data_root=str(tmp_path), split='train')
    assert len(dataset) == 20
    info = dataset.get_data_info(3)
    np.testing.assert_array_equal(info['img'], train[3])
    assert info['gt_label'] == 3
    assert dataset.CLASSES[0] == 'airplane' and len(dataset.CLASSES) == 10
    test_set = STL10(data_root=str(tmp_path), split='test')
    assert len(test_set) == 10
    np.testing.assert_array_equal(test_set.get_data_info(9)['img'], test[9])


def test_stl10_folds_and_class_names(tmp_path, rng):
    train = _images(rng, 30, 96)
    folds = [[i, i + 10] for i in range(10)]
    names = [f'class{i}' for i in range(10)]
    write_stl10(
        str(tmp_path),
        train,
        np.arange(30) % 10,
        _images(rng, 10, 96),
        np.arange(10),
        folds=folds,
        class_names=names)
    dataset = STL10(data_root=str(tmp_path), split='train', fold=4)
    assert len(dataset) == 2
    np.testing.assert_array_equal(dataset.get_data_info(1)['img'], train[14])
    assert dataset.CLASSES == tuple(names)
    # class names given in the config win over class_names.txt
    dataset = STL10(
        data_root=str(tmp_path),
        metainfo=dict(classes=[str(i) for i in range(10)]))
    assert dataset.CLASSES[0] == '0'


def test_stl10_pipeline(tmp_path, rng):
    write_stl10(
        str(tmp_path), _images(rng, 10, 96),
        np.arange(10), _images(rng, 10, 96), np.arange(10))
    dataset = DATASETS.build(
        dict(
            type='STL10',
            data_root=str(tmp_path),
            pipeline=[
                dict(type='RandomCrop', crop_size=96, padding=6),
                dict(type='RandomFlip', prob=0.5),
                dict(type='PackInputs')
            ]))
    sample = dataset[0]
    assert tuple(sample['inputs'].shape) == (3, 96, 96)
    assert sample['data_samples'].gt_label.item() == 0


def test_stl10_errors(tmp_path, rng):
    with pytest.raises(DatasetNotFoundError) as info:
        STL10(data_root=str(tmp_path))
    message = str(info.value)
    assert osp.join(str(tmp_path), 'stl10_binary') in message
    assert 'train_X.bin' in message and 'train_y.bin' in message
    assert 'stl10_binary.tar.gz' in message and 'http' in message
    with pytest.raises(ValueError, match='split'):
        STL10(data_root=str(tmp_path), split='unlabeled')
    with pytest.raises(ValueError, match='fold'):
        STL10(data_root=str(tmp_path), split='test', fold=0)
    with pytest.raises(ValueError, match='fold'):
        STL10(data_root=str(tmp_path), fold=10)

    write_stl10(
        str(tmp_path), _images(rng, 10, 96),
        np.arange(10), _images(rng, 10, 96), np.arange(10))
    folder = tmp_path / 'stl10_binary'
    data = (folder / 'train_X.bin').read_bytes()
    (folder / 'train_X.bin').write_bytes(data[:-100])
    with pytest.raises(DatasetError, match='truncated'):
        STL10(data_root=str(tmp_path))
    (folder / 'train_X.bin').write_bytes(data[:9 * 3 * 96 * 96])
    with pytest.raises(DatasetError, match='9 train images but 10 labels'):
        STL10(data_root=str(tmp_path))


@pytest.fixture
def stl10_text_files(tmp_path, rng):
    """A generated STL-10 folder; returns its ``stl10_binary`` folder."""
    write_stl10(
        str(tmp_path), _images(rng, 20, 96),
        np.arange(20) % 10, _images(rng, 10, 96), np.arange(10))
    return tmp_path / 'stl10_binary'


def _one_line_error(data_root, **kwargs):
    with pytest.raises(DatasetError) as info:
        STL10(data_root=str(data_root), **kwargs)
    message = str(info.value)
    assert '\n' not in message
    return message


def test_stl10_class_names_not_utf8(stl10_text_files):
    path = stl10_text_files / 'class_names.txt'
    lines = path.read_bytes().splitlines()
    lines[2] = b'ca\xff\xfer'  # latin-1 bytes, not UTF-8
    path.write_bytes(b'\n'.join(lines) + b'\n')
    message = _one_line_error(stl10_text_files.parent)
    assert message.startswith(f'STL-10: {path}, line 3: byte 0xff at '
                              'column 3 is not UTF-8 text')
    # valid UTF-8 beyond ASCII is read
    lines[2] = 'caf\u00e9'.encode()
    path.write_bytes(b'\n'.join(lines) + b'\n')
    assert STL10(data_root=str(stl10_text_files.parent)).CLASSES[2] == \
        'caf\u00e9'


@pytest.mark.parametrize('token', ['12x', '-1', '3.0', '\u0663'])
def test_stl10_fold_indices_bad_token(stl10_text_files, token):
    path = stl10_text_files / 'fold_indices.txt'
    lines = path.read_text().splitlines()
    lines[4] = f'4 {token} 14'
    path.write_text('\n'.join(lines) + '\n', encoding='utf-8')
    message = _one_line_error(stl10_text_files.parent, fold=4)
    assert message.startswith(f'STL-10: {path}, line 5: {token!r} is not '
                              'an image index')


def test_stl10_fold_indices_out_of_range(stl10_text_files):
    path = stl10_text_files / 'fold_indices.txt'
    lines = path.read_text().splitlines()
    good = list(lines)
    lines[1] = '1 ' + '9' * 30  # beyond any integer type, too
    path.write_text('\n'.join(lines) + '\n')
    message = _one_line_error(stl10_text_files.parent, fold=1)
    assert message == (f'STL-10: {path}, line 2: index {"9" * 30} is '
                       'outside the 20 training images (0 to 19).')
    path.write_text('\n'.join(good[:9]) + '\n')
    assert _one_line_error(stl10_text_files.parent, fold=1) == (
        f'STL-10: {path} holds 9 lines of indices, not the 10 folds of the '
        'release.')


def test_stl10_fold_indices_not_utf8(stl10_text_files):
    path = stl10_text_files / 'fold_indices.txt'
    path.write_bytes(path.read_bytes().replace(b'\n', b'\n\x80', 1))
    message = _one_line_error(stl10_text_files.parent, fold=0)
    assert message.startswith(f'STL-10: {path}, line 2: byte 0x80 at '
                              'column 1 is not UTF-8 text')


# -- CIFAR --------------------------------------------------------------------
def test_cifar10_generated_data(tmp_path, rng):
    train = _images(rng, 50, 32)
    write_cifar10(
        str(tmp_path), train,
        np.arange(50) % 10, _images(rng, 20, 32),
        np.arange(20) % 10)
    # MMPretrain's reader in the same format (md5 aside)
    with open(tmp_path / 'cifar-10-batches-py' / 'data_batch_1', 'rb') as f:
        entry = pickle.load(f, encoding='latin1')
    assert entry['data'].shape == (10, 3072)
    dataset = CheckedCIFAR10(data_root=str(tmp_path), verify_md5=False)
    assert len(dataset) == 50
    np.testing.assert_array_equal(dataset.get_data_info(13)['img'], train[13])
    assert dataset.get_data_info(13)['gt_label'] == 3
    test_set = CheckedCIFAR10(
        data_root=str(tmp_path), split='test', verify_md5=False)
    assert len(test_set) == 20


def test_cifar_md5_mismatch_is_an_error_not_a_download(tmp_path, rng):
    write_cifar10(
        str(tmp_path), _images(rng, 10, 32), np.arange(10),
        _images(rng, 10, 32), np.arange(10))
    folder = tmp_path / 'cifar-10-batches-py'
    before = {name: (folder / name).read_bytes()
              for name in os.listdir(folder)}
    with pytest.raises(DatasetError) as info:
        CheckedCIFAR10(data_root=str(tmp_path), download=True)
    message = str(info.value)
    assert 'differ from the official release' in message
    assert 'verify_md5=False' in message
    # nothing was downloaded or overwritten
    assert {name: (folder / name).read_bytes()
            for name in os.listdir(folder)} == before


def test_cifar_missing_without_download(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        CheckedCIFAR10(data_root=str(tmp_path), download=False)
    message = str(info.value)
    assert osp.join(str(tmp_path), 'cifar-10-batches-py') in message
    assert 'data_batch_1' in message and 'data_batch_5' in message
    assert 'cifar-10-python.tar.gz' in message
    assert 'failed' not in message  # no download was tried
    with pytest.raises(DatasetNotFoundError, match='test_batch'):
        CheckedCIFAR10(data_root=str(tmp_path), split='test', download=False)


def test_cifar_failed_download_says_why(tmp_path, monkeypatch):
    import mmrevode.datasets.utils as utils

    def offline(*args, **kwargs):
        raise OSError('Name or service not known')

    monkeypatch.setattr(utils, 'download_and_extract_archive', offline)
    with pytest.raises(DatasetNotFoundError) as info:
        CheckedCIFAR100(data_root=str(tmp_path), download=True)
    message = str(info.value)
    assert 'Downloading it automatically failed' in message
    assert 'Name or service not known' in message
    assert 'cifar-100-python' in message and 'train' in message


def test_cifar100_generated_data(tmp_path, rng):
    write_cifar100(
        str(tmp_path), _images(rng, 200, 32),
        np.arange(200) % 100, _images(rng, 100, 32), np.arange(100))
    dataset = CheckedCIFAR100(data_root=str(tmp_path), verify_md5=False)
    assert len(dataset) == 200
    assert dataset.get_data_info(157)['gt_label'] == 57
    assert len(dataset.CLASSES) == 100


class _WritesFile:

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, 'w'))


@pytest.mark.parametrize('damage', ['crafted', 'truncated', 'garbage',
                                    'bad labels', 'bad data'])
def test_cifar_bad_file_is_one_error_naming_it(tmp_path, rng, damage):
    write_cifar10(
        str(tmp_path), _images(rng, 20, 32), np.arange(20) % 10,
        _images(rng, 10, 32), np.arange(10))
    path = tmp_path / 'cifar-10-batches-py' / 'data_batch_2'
    marker = tmp_path / 'marker'
    entry = dict(data=np.zeros((4, 3072), np.uint8), labels=[0, 1, 2, 3])
    if damage == 'crafted':
        entry['labels'] = _WritesFile(marker)
    elif damage == 'bad labels':
        entry['labels'] = [0, 1, 2, 10]
    elif damage == 'bad data':
        entry['data'] = np.zeros((4, 3072), np.float32)
    with open(path, 'wb') as f:
        pickle.dump(entry, f)
    if damage == 'truncated':
        path.write_bytes(path.read_bytes()[:300])
    elif damage == 'garbage':
        path.write_bytes(b'\x00garbage' * 20)
    with pytest.raises(DatasetError) as info:
        CheckedCIFAR10(data_root=str(tmp_path), verify_md5=False)
    assert str(path) in str(info.value)
    assert not marker.exists()
    if damage == 'crafted':
        assert 'io.open' in str(info.value)


def test_restricted_unpickler_admits_the_release_format():
    from mmrevode.datasets.safe_pickle import load_data_pickle
    entry = dict(batch_label='b', data=np.arange(6, dtype=np.uint8)
                 .reshape(2, 3), labels=[1, 2], filenames=['a', 'b'],
                 raw=b'bytes')
    for protocol in (2, pickle.HIGHEST_PROTOCOL):
        loaded = load_data_pickle(pickle.dumps(entry, protocol), 'x')
        np.testing.assert_array_equal(loaded['data'], entry['data'])
        assert loaded['labels'] == [1, 2] and loaded['raw'] == b'bytes'
    with pytest.raises(DatasetError, match='the global `posix.system`'
                       '|the global `os.system`'):
        load_data_pickle(
            b'cposix\nsystem\n(S"true"\ntR.', 'crafted')
