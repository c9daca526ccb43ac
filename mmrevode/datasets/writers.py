"""Write images and labels in the CIFAR and STL-10 release formats.

For your own data (read them with ``verify_md5=False`` for CIFAR), and for
the tests, which generate small data sets in the real formats.
"""
import math
import os
import os.path as osp
import pickle
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np

from .stl10 import STL10_CATEGORIES


def _check(images: np.ndarray, labels: Sequence[int], size: int,
           num_classes: int) -> tuple:
    images = np.asarray(images)
    labels = np.asarray(labels, dtype=np.int64)
    if images.dtype != np.uint8 or images.ndim != 4 or \
            images.shape[1:] != (size, size, 3):
        raise ValueError(f'images must be uint8 of shape (N, {size}, {size}, '
                         f'3), got {images.dtype} {images.shape}.')
    if labels.shape != (len(images), ):
        raise ValueError(f'need one label per image: {len(images)} images, '
                         f'labels of shape {labels.shape}.')
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f'labels must be in [0, {num_classes - 1}].')
    return images, labels


def _write_splits(folder: str, size: int, num_classes: int,
                  splits: Dict[str, Tuple[np.ndarray, Sequence[int]]],
                  write_split: Callable[[str, np.ndarray, np.ndarray], None]
                  ) -> Dict[str, int]:
    """Check the images and labels of every split (name -> ``(images,
    labels)``), create ``folder`` and write each split there with
    ``write_split(name, images, labels)``. Nothing is written unless all
    splits are valid. Returns the number of images of each split."""
    checked = {
        name: _check(images, labels, size, num_classes)
        for name, (images, labels) in splits.items()
    }
    os.makedirs(folder, exist_ok=True)
    for name, (images, labels) in checked.items():
        write_split(name, images, labels)
    return {name: len(labels) for name, (_, labels) in checked.items()}


def _dump_cifar_batch(path: str,
                      images: np.ndarray,
                      labels: np.ndarray,
                      label_key: str,
                      extra: Optional[dict] = None) -> None:
    # Rows of 3072 bytes: the red plane, then green, then blue, row-major.
    data = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    entry = {
        'batch_label': osp.basename(path),
        'data': np.ascontiguousarray(data),
        label_key: [int(label) for label in labels],
        'filenames': [f'{i:06d}.png' for i in range(len(images))],
        **(extra or {}),
    }
    with open(path, 'wb') as f:
        pickle.dump(entry, f)


def write_cifar10(data_root: str,
                  train_images: np.ndarray,
                  train_labels: Sequence[int],
                  test_images: np.ndarray,
                  test_labels: Sequence[int],
                  class_names: Optional[Sequence[str]] = None) -> str:
    """Write ``<data_root>/cifar-10-batches-py/`` as the official release.

    The training set is split into ``data_batch_1`` ... ``data_batch_5``
    (as evenly as possible), the test set goes to ``test_batch``, class
    names to ``batches.meta``. Read it back with
    ``CheckedCIFAR10(data_root, verify_md5=False)``.

    Args:
        data_root (str): The folder to create ``cifar-10-batches-py`` in.
        train_images, test_images (np.ndarray): uint8, (N, 32, 32, 3), RGB.
        train_labels, test_labels (Sequence[int]): Labels in 0..9.
        class_names (Sequence[str], optional): Ten names. Defaults to the
            CIFAR-10 classes.

    Returns:
        str: The folder written.
    """
    from mmpretrain.datasets.categories import CIFAR10_CATEGORIES
    folder = osp.join(data_root, 'cifar-10-batches-py')

    def write_split(split, images, labels):
        if split == 'test':
            _dump_cifar_batch(
                osp.join(folder, 'test_batch'), images, labels, 'labels')
            return
        parts = np.array_split(np.arange(len(images)), 5)
        for i, part in enumerate(parts, 1):
            _dump_cifar_batch(
                osp.join(folder, f'data_batch_{i}'), images[part],
                labels[part], 'labels')

    sizes = _write_splits(
        folder, 32, 10,
        dict(train=(train_images, train_labels),
             test=(test_images, test_labels)), write_split)
    meta = {
        'label_names': list(class_names or CIFAR10_CATEGORIES),
        # The largest of the five training batches.
        'num_cases_per_batch': math.ceil(sizes['train'] / 5),
        'num_vis': 3072,
    }
    with open(osp.join(folder, 'batches.meta'), 'wb') as f:
        pickle.dump(meta, f)
    return folder


def write_cifar100(data_root: str, train_images: np.ndarray,
                   train_labels: Sequence[int], test_images: np.ndarray,
                   test_labels: Sequence[int]) -> str:
    """Write ``<data_root>/cifar-100-python/`` (``train``, ``test``, ``meta``).

    Labels (0..99) are stored as the fine labels; the coarse labels are set
    to 0. Read it back with ``CheckedCIFAR100(data_root, verify_md5=False)``.

    Returns:
        str: The folder written.
    """
    from mmpretrain.datasets.categories import CIFAR100_CATEGORIES
    folder = osp.join(data_root, 'cifar-100-python')

    def write_split(split, images, labels):
        _dump_cifar_batch(
            osp.join(folder, split),
            images,
            labels,
            'fine_labels',
            extra=dict(coarse_labels=[0] * len(labels)))

    _write_splits(
        folder, 32, 100,
        dict(train=(train_images, train_labels),
             test=(test_images, test_labels)), write_split)
    meta = {
        'fine_label_names': list(CIFAR100_CATEGORIES),
        'coarse_label_names': ['all'],
    }
    with open(osp.join(folder, 'meta'), 'wb') as f:
        pickle.dump(meta, f)
    return folder


def write_stl10(data_root: str,
                train_images: np.ndarray,
                train_labels: Sequence[int],
                test_images: np.ndarray,
                test_labels: Sequence[int],
                folds: Optional[Sequence[Sequence[int]]] = None,
                class_names: Sequence[str] = STL10_CATEGORIES) -> str:
    """Write ``<data_root>/stl10_binary/`` in the official binary format.

    Images are written channel by channel, each 96 x 96 plane column-major;
    labels as bytes 1..10; ``fold_indices.txt`` as ten lines of 0-based
    training indices (by default image ``i`` is in fold ``i % 10``).

    Args:
        data_root (str): The folder to create ``stl10_binary`` in.
        train_images, test_images (np.ndarray): uint8, (N, 96, 96, 3), RGB.
        train_labels, test_labels (Sequence[int]): Labels in 0..9.
        folds (Sequence[Sequence[int]], optional): Ten lists of training
            indices. Defaults to None (round robin).
        class_names (Sequence[str]): Ten names. Defaults to the STL-10
            classes.

    Returns:
        str: The folder written.
    """
    folder = osp.join(data_root, 'stl10_binary')

    def write_split(split, images, labels):
        # (N, H, W, C) -> (N, C, W, H): column-major planes
        images.transpose(0, 3, 2, 1).astype(np.uint8).tofile(
            osp.join(folder, f'{split}_X.bin'))
        (labels + 1).astype(np.uint8).tofile(
            osp.join(folder, f'{split}_y.bin'))

    sizes = _write_splits(
        folder, 96, 10,
        dict(train=(train_images, train_labels),
             test=(test_images, test_labels)), write_split)
    if folds is None:
        folds = [list(range(k, sizes['train'], 10)) for k in range(10)]
    with open(osp.join(folder, 'fold_indices.txt'), 'w') as f:
        for fold in folds:
            f.write(' '.join(str(int(i)) for i in fold) + '\n')
    with open(osp.join(folder, 'class_names.txt'), 'w') as f:
        f.write('\n'.join(class_names) + '\n')
    return folder
