"""The Digits data set, read from scikit-learn."""
import numpy as np
import pytest
from mmpretrain.registry import DATASETS

import mmrevode  # noqa: F401
from mmrevode.datasets import DIGITS_CATEGORIES, Digits

pytest.importorskip('sklearn')


@pytest.fixture(scope='module')
def splits():
    return Digits(split='train'), Digits(split='test')


def test_registered_and_built_from_a_config():
    dataset = DATASETS.build(
        dict(type='Digits', split='test', pipeline=[dict(type='PackInputs')]))
    sample = dataset[0]
    assert tuple(sample['inputs'].shape) == (3, 32, 32)
    assert 0 <= sample['data_samples'].gt_label.item() < 10


def test_split_sizes_classes_and_images(splits):
    train, test = splits
    assert (len(train), len(test)) == (1347, 450)
    assert train.metainfo['classes'] == DIGITS_CATEGORIES
    for dataset in (train, test):
        info = dataset.get_data_info(0)
        assert info['img'].shape == (32, 32, 3)
        assert info['img'].dtype == np.uint8
        # grey images: three equal channels
        assert np.array_equal(info['img'][..., 0], info['img'][..., 2])
    # stratified: every class in both splits, in proportion
    for dataset, size in ((train, 1347), (test, 450)):
        counts = np.bincount(dataset.get_gt_labels(), minlength=10)
        assert counts.sum() == size
        assert counts.min() >= 0.08 * size


def test_split_is_fixed_and_disjoint(splits):
    train, test = splits
    again = Digits(split='test')
    first = np.stack([test.get_data_info(i)['img'] for i in range(len(test))])
    second = np.stack(
        [again.get_data_info(i)['img'] for i in range(len(again))])
    assert np.array_equal(first, second)
    train_images = {
        train.get_data_info(i)['img'].tobytes()
        for i in range(len(train))
    }
    shared = sum(img.tobytes() in train_images for img in first)
    # a few digits are pixel-identical after rounding, no more
    assert shared <= 5
    other_seed = Digits(split='test', seed=1)
    assert not np.array_equal(
        first,
        np.stack([
            other_seed.get_data_info(i)['img']
            for i in range(len(other_seed))
        ]))


def test_images_are_scikit_learn_digits_upsampled():
    from sklearn.datasets import load_digits
    digits = load_digits()
    dataset = Digits(split='train', test_fraction=0.5, image_size=8)
    assert len(dataset) == 898  # 1797 - ceil(0.5 * 1797)
    info = dataset.get_data_info(0)
    # at 8x8 the upsampling is the identity: grey levels 0..16 scaled to 255
    matches = np.all(
        np.abs(digits.images * 255 / 16 - info['img'][..., 0]) <= 0.5,
        axis=(1, 2))
    assert matches.any()
    assert info['gt_label'] == digits.target[np.argmax(matches)]


@pytest.mark.parametrize('kwargs, match', [
    (dict(split='val'), 'split must be one of'),
    (dict(test_fraction=1.0), 'test_fraction must be'),
    (dict(test_fraction=0), 'test_fraction must be'),
    (dict(image_size=4), 'image_size must be'),
    (dict(seed='0'), 'seed must be'),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Digits(**kwargs)
