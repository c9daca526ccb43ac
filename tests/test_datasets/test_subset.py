"""The class-balanced subset wrapper of the fewer-data experiments."""
from collections import Counter

import numpy as np
import pytest
from mmengine.dataset import BaseDataset
from mmpretrain.registry import DATASETS

import mmrevode  # noqa: F401
from mmrevode.datasets import ClassBalancedSubset


class _Labels(BaseDataset):
    """A data set of labels only: class ``c`` has ``counts[c]`` samples."""

    def __init__(self, counts, **kwargs):
        self.counts = counts
        super().__init__(**kwargs)

    def load_data_list(self):
        labels = np.repeat(np.arange(len(self.counts)), self.counts)
        # interleave the classes, as real data sets are
        order = np.random.default_rng(123).permutation(len(labels))
        return [
            dict(gt_label=int(labels[i]), sample=int(k))
            for k, i in enumerate(order)
        ]

    def get_cat_ids(self, idx):
        return [self.get_data_info(idx)['gt_label']]


def _labels_of(subset):
    return [subset.get_cat_ids(i)[0] for i in range(len(subset))]


@pytest.mark.parametrize('fraction', [0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0])
def test_count_per_class(fraction):
    dataset = _Labels([500] * 10)
    subset = ClassBalancedSubset(dataset, fraction=fraction, seed=0)
    expected = int(round(500 * fraction))
    assert len(subset) == 10 * expected
    assert Counter(_labels_of(subset)) == {c: expected for c in range(10)}
    assert subset.class_counts == {c: expected for c in range(10)}


def test_unequal_classes_round_half_up_and_keep_one():
    dataset = _Labels([10, 5, 3, 1])
    subset = ClassBalancedSubset(dataset, fraction=0.5)
    # 5, 2.5 -> 3, 1.5 -> 2, 0.5 -> 1 (and never less than one)
    assert Counter(_labels_of(subset)) == {0: 5, 1: 3, 2: 2, 3: 1}
    subset = ClassBalancedSubset(dataset, fraction=0.01)
    assert Counter(_labels_of(subset)) == {0: 1, 1: 1, 2: 1, 3: 1}
    subset = ClassBalancedSubset(dataset, num_per_class=4)
    assert Counter(_labels_of(subset)) == {0: 4, 1: 4, 2: 3, 3: 1}


def test_same_seed_same_indices_other_seed_other_indices():
    counts = [100] * 10
    first = ClassBalancedSubset(_Labels(counts), fraction=0.1, seed=3)
    again = ClassBalancedSubset(_Labels(counts), fraction=0.1, seed=3)
    other = ClassBalancedSubset(_Labels(counts), fraction=0.1, seed=4)
    assert first.indices == again.indices
    assert first.indices != other.indices
    # sorted, unique, and the samples are the wrapped data set's
    assert first.indices == sorted(set(first.indices))
    assert first.get_data_info(0) == first.dataset.get_data_info(
        first.indices[0])
    # a smaller fraction does not touch the global random state
    state = np.random.get_state()[1].copy()
    ClassBalancedSubset(_Labels(counts), fraction=0.2, seed=0)
    np.testing.assert_array_equal(np.random.get_state()[1], state)


def test_built_from_config_lazily():
    DATASETS.register_module(module=_Labels, force=True)
    subset = DATASETS.build(
        dict(
            type='ClassBalancedSubset',
            dataset=dict(type='_Labels', counts=[20] * 3),
            fraction=0.25,
            lazy_init=True))
    assert not subset._fully_initialized
    assert len(subset) == 15
    assert subset.metainfo == subset.dataset.metainfo
    assert 'fraction=0.25' in repr(subset)


@pytest.mark.parametrize('kwargs, match', [
    (dict(), 'exactly one'),
    (dict(fraction=0.5, num_per_class=3), 'exactly one'),
    (dict(fraction=0), r'\(0, 1\]'),
    (dict(fraction=1.5), r'\(0, 1\]'),
    (dict(num_per_class=0), 'positive'),
    (dict(fraction=0.5, seed=-1), 'seed'),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ClassBalancedSubset(_Labels([2, 2]), **kwargs)
