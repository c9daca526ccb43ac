"""STL-10 read from the official binary release."""
import os.path as osp
from typing import List, Optional

import numpy as np
from mmpretrain.datasets import BaseDataset
from mmpretrain.registry import DATASETS

from .utils import (DatasetError, DatasetNotFoundError, check_split,
                    missing_data_message, try_download)

STL10_CATEGORIES = ('airplane', 'bird', 'car', 'cat', 'deer', 'dog', 'horse',
                    'monkey', 'ship', 'truck')


@DATASETS.register_module()
class STL10(BaseDataset):
    """`STL-10 <https://cs.stanford.edu/~acoates/stl10/>`_ (labelled part).

    Reads the binary release in ``<data_root>/stl10_binary/``:

    - ``train_X.bin`` / ``test_X.bin``: uint8 images, 3 x 96 x 96 each,
      stored channel by channel and column-major (every channel is a
      transposed 96 x 96 plane);
    - ``train_y.bin`` / ``test_y.bin``: uint8 labels 1 to 10 (returned as
      0 to 9);
    - ``class_names.txt``: one class name per line (used for the class
      names when present);
    - ``fold_indices.txt``: ten lines of 0-based indices into the training
      set, the ten predefined training folds of 1000 images.

    5000 training and 8000 test images, 10 classes. The unlabelled part
    (``unlabeled_X.bin``) is not read.

    Args:
        data_root (str): The folder holding ``stl10_binary``.
        split (str): ``'train'`` or ``'test'``. Defaults to ``'train'``.
        fold (int, optional): With ``split='train'``, keep only the given
            predefined fold (0 to 9) of 1000 images. Defaults to None (all
            5000 training images).
        download (bool): Download the 2.6 GB archive when files are
            missing. Defaults to False.
        metainfo (dict, optional): Meta information. Defaults to None (the
            STL-10 classes).
        **kwargs: Other arguments of :class:`mmpretrain.datasets.BaseDataset`
            (``pipeline``, ``test_mode``, ...).

    Example:
        >>> from mmrevode.datasets import STL10
        >>> dataset = STL10(  # doctest: +SKIP
        ...     data_root='data/stl10', split='test')
        >>> len(dataset), dataset[0]['img'].shape  # doctest: +SKIP
        (8000, (96, 96, 3))
    """
    base_folder = 'stl10_binary'
    url = 'http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz'
    filename = 'stl10_binary.tar.gz'
    tgz_md5 = '91f7769df0f17e558f3565bffb0c7dfb'
    image_shape = (3, 96, 96)
    num_folds = 10
    METAINFO = {'classes': STL10_CATEGORIES}

    def __init__(self,
                 data_root: str = '',
                 split: str = 'train',
                 fold: Optional[int] = None,
                 download: bool = False,
                 metainfo: Optional[dict] = None,
                 data_prefix: str = '',
                 test_mode: bool = False,
                 **kwargs):
        check_split('STL10', split)
        if fold is not None:
            if split != 'train':
                raise ValueError('STL10: `fold` selects one of the ten '
                                 'predefined training folds; use it with '
                                 f'split="train", not {split!r}.')
            if isinstance(fold, bool) or not isinstance(fold, int) or \
                    not 0 <= fold < self.num_folds:
                raise ValueError(f'STL10: fold must be an int in [0, '
                                 f'{self.num_folds - 1}], got {fold!r}.')
        if not data_root and not data_prefix:
            raise ValueError('STL10: set `data_root` to the folder that holds '
                             f'{self.base_folder}/.')
        self.split = split
        self.fold = fold
        self.download = download
        self._user_classes = bool(metainfo and 'classes' in metainfo)
        super().__init__(
            ann_file='',
            metainfo=metainfo,
            data_root=data_root,
            data_prefix=dict(root=data_prefix),
            test_mode=test_mode,
            **kwargs)

    @property
    def folder(self) -> str:
        """The folder of the binary files."""
        return osp.join(self.data_prefix['root'], self.base_folder)

    def _required_files(self) -> List[str]:
        files = [f'{self.split}_X.bin', f'{self.split}_y.bin']
        if self.fold is not None:
            files.append('fold_indices.txt')
        return files

    def _missing_files(self) -> List[str]:
        return [
            name for name in self._required_files()
            if not osp.isfile(osp.join(self.folder, name))
        ]

    def _prepare_files(self) -> None:
        root = self.data_prefix['root']
        missing = self._missing_files()
        reason = None
        if missing and self.download:
            reason = try_download(self.url, root, self.filename, self.tgz_md5)
            missing = self._missing_files()
        if missing:
            raise DatasetNotFoundError(
                missing_data_message(
                    'STL-10',
                    self.folder,
                    missing,
                    self.url,
                    root,
                    self.filename,
                    reason=reason))

    def _read_images(self, path: str) -> np.ndarray:
        """Read ``*_X.bin`` as an (N, 96, 96, 3) uint8 array (HWC)."""
        raw = np.fromfile(path, dtype=np.uint8)
        size = int(np.prod(self.image_shape))
        if raw.size == 0 or raw.size % size:
            raise DatasetError(
                f'STL-10: {path} has {raw.size} bytes, not a positive '
                f'multiple of {size} (3 x 96 x 96): the file is truncated or '
                'not an STL-10 image file.')
        # Stored as (N, C, W, H) in C order, i.e. each plane column-major.
        return np.ascontiguousarray(
            raw.reshape(-1, *self.image_shape).transpose(0, 3, 2, 1))

    def _read_labels(self, path: str) -> np.ndarray:
        labels = np.fromfile(path, dtype=np.uint8).astype(np.int64) - 1
        num_classes = len(self.CLASSES)
        if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
            raise DatasetError(
                f'STL-10: {path} holds labels outside 1..{num_classes}.')
        return labels

    @staticmethod
    def _text_lines(path: str) -> List[str]:
        """The lines of a text file of the release, decoded as UTF-8."""
        with open(path, 'rb') as f:
            raw = f.read().splitlines()
        lines = []
        for number, line in enumerate(raw, 1):
            try:
                lines.append(line.decode('utf-8'))
            except UnicodeDecodeError as e:
                raise DatasetError(
                    f'STL-10: {path}, line {number}: byte '
                    f'0x{line[e.start]:02x} at column {e.start + 1} is not '
                    'UTF-8 text: the file is corrupt or not the release\'s; '
                    'restore it from the archive.') from None
        return lines

    def _read_folds(self, num_images: int) -> List[np.ndarray]:
        path = osp.join(self.folder, 'fold_indices.txt')
        folds = []
        for number, line in enumerate(self._text_lines(path), 1):
            tokens = line.split()
            if not tokens:
                continue
            bad = next((t for t in tokens
                        if not (t.isascii() and t.isdigit())), None)
            if bad is not None:
                raise DatasetError(
                    f'STL-10: {path}, line {number}: {bad!r} is not an '
                    'image index (digits 0-9 only): the file is corrupt '
                    "or not the release's; restore it from the archive.")
            outside = next((t for t in tokens if int(t) >= num_images), None)
            if outside is not None:
                raise DatasetError(
                    f'STL-10: {path}, line {number}: index {outside} is '
                    f'outside the {num_images} training images (0 to '
                    f'{num_images - 1}).')
            folds.append(np.array([int(t) for t in tokens], dtype=np.int64))
        if len(folds) != self.num_folds:
            raise DatasetError(
                f'STL-10: {path} holds {len(folds)} lines of indices, not '
                f'the {self.num_folds} folds of the release.')
        return folds

    def _read_class_names(self) -> None:
        path = osp.join(self.folder, 'class_names.txt')
        if self._user_classes or not osp.isfile(path):
            return
        names = tuple(
            line.strip() for line in self._text_lines(path) if line.strip())
        if names:
            self._metainfo['classes'] = names

    def load_data_list(self) -> List[dict]:
        """Read the images and labels of the split (and fold)."""
        self._prepare_files()
        self._read_class_names()
        images = self._read_images(
            osp.join(self.folder, f'{self.split}_X.bin'))
        labels = self._read_labels(
            osp.join(self.folder, f'{self.split}_y.bin'))
        if len(images) != len(labels):
            raise DatasetError(
                f'STL-10: {self.folder} has {len(images)} {self.split} '
                f'images but {len(labels)} labels; a file is truncated.')
        indices = np.arange(len(images))
        if self.fold is not None:
            indices = self._read_folds(len(images))[self.fold]
        return [
            dict(img=images[i], gt_label=int(labels[i])) for i in indices
        ]

    def extra_repr(self) -> List[str]:
        body = [f'Prefix of data: \t{self.data_prefix["root"]}']
        if self.fold is not None:
            body.append(f'Fold: \t{self.fold}')
        return body
