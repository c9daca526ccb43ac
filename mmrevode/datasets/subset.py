"""A seeded, class-balanced subset of any classification data set."""
import copy
import math
from typing import Dict, List, Optional, Union

import numpy as np
from mmengine.dataset import BaseDataset, force_full_init
from mmpretrain.registry import DATASETS


@DATASETS.register_module()
class ClassBalancedSubset:
    """Keep a seeded, class-balanced fraction of a data set.

    For the "fewer training data" experiments: of every class ``c`` with
    ``n_c`` samples, ``max(1, floor(fraction * n_c + 0.5))`` samples are kept
    (``fraction * n_c`` rounded half up, at least one), or exactly
    ``num_per_class`` (at most ``n_c``). Which samples are kept is drawn with
    ``numpy.random.default_rng(seed)``, class by class in label order, so the
    same data set, fraction and seed give the same indices in every process
    and every run, and the global random state is not touched. The kept
    samples stay in their original order.

    Args:
        dataset (BaseDataset | dict): The data set, or its config. It must
            give ``get_cat_ids(idx)`` (one label per sample), as MMPretrain's
            data sets do.
        fraction (float, optional): The fraction in (0, 1] to keep of every
            class. Defaults to None.
        num_per_class (int, optional): Keep this many samples of every class
            instead. Exactly one of ``fraction`` and ``num_per_class`` must be
            given. Defaults to None.
        seed (int): Seed of the selection. Defaults to 0.
        lazy_init (bool): Defer loading the data set and selecting the
            samples until first use. Defaults to False.

    Example:
        >>> from mmrevode.datasets import ClassBalancedSubset
        >>> subset = ClassBalancedSubset(  # doctest: +SKIP
        ...     dict(type='CheckedCIFAR10', data_root='data/cifar10'),
        ...     fraction=0.1, seed=0)
        >>> len(subset)  # doctest: +SKIP
        5000
    """

    def __init__(self,
                 dataset: Union[BaseDataset, dict],
                 fraction: Optional[float] = None,
                 num_per_class: Optional[int] = None,
                 seed: int = 0,
                 lazy_init: bool = False):
        if (fraction is None) == (num_per_class is None):
            raise ValueError('ClassBalancedSubset: give exactly one of '
                             '`fraction` and `num_per_class`, got '
                             f'fraction={fraction!r}, '
                             f'num_per_class={num_per_class!r}.')
        if fraction is not None and (isinstance(fraction, bool)
                                     or not isinstance(fraction, (int, float))
                                     or not 0 < fraction <= 1):
            raise ValueError('ClassBalancedSubset: fraction must be a number '
                             f'in (0, 1], got {fraction!r}.')
        if num_per_class is not None and (
                isinstance(num_per_class, bool)
                or not isinstance(num_per_class, int) or num_per_class < 1):
            raise ValueError('ClassBalancedSubset: num_per_class must be a '
                             f'positive int, got {num_per_class!r}.')
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError('ClassBalancedSubset: seed must be a '
                             f'non-negative int, got {seed!r}.')
        if isinstance(dataset, dict):
            dataset = DATASETS.build(dataset)
        if not hasattr(dataset, 'get_cat_ids'):
            raise TypeError('ClassBalancedSubset: the data set must have '
                            '`get_cat_ids(idx)`; got '
                            f'{type(dataset).__name__}.')
        self.dataset = dataset
        self.fraction = fraction
        self.num_per_class = num_per_class
        self.seed = seed
        self._metainfo = dataset.metainfo
        self._fully_initialized = False
        if not lazy_init:
            self.full_init()

    @property
    def metainfo(self) -> dict:
        """The meta information of the wrapped data set."""
        return copy.deepcopy(self._metainfo)

    def _labels(self) -> np.ndarray:
        labels = []
        for idx in range(len(self.dataset)):
            cat_ids = self.dataset.get_cat_ids(idx)
            if len(cat_ids) != 1:
                raise ValueError(
                    'ClassBalancedSubset needs exactly one label per sample; '
                    f'sample {idx} has {list(cat_ids)}.')
            labels.append(int(cat_ids[0]))
        return np.asarray(labels, dtype=np.int64)

    def _count(self, available: int) -> int:
        if self.num_per_class is not None:
            return min(self.num_per_class, available)
        return max(1, math.floor(self.fraction * available + 0.5))

    def full_init(self) -> None:
        """Load the wrapped data set and select the samples."""
        if self._fully_initialized:
            return
        if hasattr(self.dataset, 'full_init'):
            self.dataset.full_init()
        labels = self._labels()
        rng = np.random.default_rng(self.seed)
        kept = []
        self.class_counts: Dict[int, int] = {}
        for label in np.unique(labels):
            members = np.flatnonzero(labels == label)
            count = self._count(len(members))
            kept.append(rng.permutation(members)[:count])
            self.class_counts[int(label)] = count
        self.indices: List[int] = sorted(
            int(i) for i in np.concatenate(kept)) if kept else []
        self._fully_initialized = True

    @force_full_init
    def get_cat_ids(self, idx: int) -> List[int]:
        """The label of the ``idx``-th kept sample."""
        return self.dataset.get_cat_ids(self.indices[idx])

    @force_full_init
    def get_data_info(self, idx: int) -> dict:
        """The annotation of the ``idx``-th kept sample."""
        return self.dataset.get_data_info(self.indices[idx])

    def __getitem__(self, idx: int) -> dict:
        if not self._fully_initialized:
            self.full_init()
        return self.dataset[self.indices[idx]]

    @force_full_init
    def __len__(self) -> int:
        return len(self.indices)

    def __repr__(self) -> str:
        if self.fraction is not None:
            what = f'fraction={self.fraction}'
        else:
            what = f'num_per_class={self.num_per_class}'
        size = len(self) if self._fully_initialized else 'not loaded'
        return (f'{type(self).__name__}({what}, seed={self.seed}, '
                f'size={size})\n{self.dataset!r}')
