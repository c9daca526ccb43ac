"""CIFAR-10/100 that say clearly what is wrong with the data folder."""
import os.path as osp
from typing import List, Optional

import numpy as np
from mmengine.fileio import get, join_path
from mmpretrain.datasets import CIFAR10, CIFAR100
from mmpretrain.datasets.utils import check_md5
from mmpretrain.registry import DATASETS

from .safe_pickle import load_data_pickle
from .utils import (DatasetError, DatasetNotFoundError, missing_data_message,
                    try_download)


class _CheckedCIFARMixin:
    """Checks the data folder before MMPretrain's CIFAR reader runs.

    MMPretrain's readers check the md5 of every file against the official
    release and, when a check fails, download the archive and extract it over
    the folder. This mixin instead:

    - downloads only when files are missing (and ``download=True``); when the
      download fails (no internet), raises :class:`DatasetNotFoundError` that
      names the folder, the missing files and the download address;
    - never overwrites existing files. With ``verify_md5=True`` files that
      differ from the official release raise :class:`DatasetError`; with
      ``verify_md5=False`` any files in the CIFAR pickle format are read
      (your own data, or data generated for tests);
    - reads the pickles with a restricted unpickler that builds only dicts,
      lists, strings, numbers and NumPy arrays (a crafted file cannot run
      code), and checks their content: a truncated, corrupt or malformed
      file raises :class:`DatasetError` naming it.
    """
    #: Printed name of the data set.
    display_name = 'CIFAR'
    #: Number of classes of the release.
    release_classes = 10

    def __init__(self,
                 data_root: str = '',
                 split: str = 'train',
                 metainfo: Optional[dict] = None,
                 download: bool = True,
                 verify_md5: bool = True,
                 **kwargs):
        self.verify_md5 = verify_md5
        super().__init__(
            data_root=data_root,
            split=split,
            metainfo=metainfo,
            download=download,
            **kwargs)

    def _split_files(self) -> List[list]:
        return self.train_list if self.split == 'train' else self.test_list

    def _missing_files(self, folder: str) -> List[str]:
        return [
            name for name, _ in self._split_files()
            if not osp.isfile(osp.join(folder, name))
        ]

    def _prepare_files(self) -> None:
        root = self.data_prefix['root']
        if '://' in str(root):
            # A remote backend: leave it to MMPretrain's own checks.
            self._files_ready = None
            return
        folder = osp.join(root, self.base_folder)
        missing = self._missing_files(folder)
        reason = None
        if missing and self.download:
            reason = try_download(self.url, root, self.filename, self.tgz_md5)
            missing = self._missing_files(folder)
        if missing:
            raise DatasetNotFoundError(
                missing_data_message(
                    self.display_name,
                    folder,
                    missing,
                    self.url,
                    root,
                    self.filename,
                    reason=reason))
        if self.verify_md5:
            differ = [
                name for name, md5 in self._split_files()
                if not check_md5(osp.join(folder, name), md5)
            ]
            if differ:
                raise DatasetError(
                    f'The {self.display_name} files {", ".join(differ)} in '
                    f'{osp.abspath(folder)} differ from the official release '
                    '(md5 mismatch). If they are your own data in the CIFAR '
                    'format, set `verify_md5=False` in the dataset configs '
                    '(train, val and test). If they should be the official '
                    f'files, delete {osp.abspath(folder)} and download '
                    f'{self.url} again.')
        self._files_ready = True

    # Called by MMPretrain's ``load_data_list`` (twice) in place of its md5
    # check, once ``_prepare_files`` has accepted the folder.
    def _check_integrity(self) -> bool:
        if getattr(self, '_files_ready', None) is None:
            return super()._check_integrity()
        return self._files_ready

    def _read_pickle(self, name: str) -> dict:
        path = join_path(self.data_prefix['root'], self.base_folder, name)
        entry = load_data_pickle(get(path), path)
        if not isinstance(entry, dict):
            raise DatasetError(f'{path} holds a {type(entry).__name__}, not '
                               f'the dict of a {self.display_name} file.')
        return entry

    def _read_batch(self, name: str):
        path = join_path(self.data_prefix['root'], self.base_folder, name)
        entry = self._read_pickle(name)
        data = entry.get('data')
        labels = entry.get('labels', entry.get('fine_labels'))
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or \
                data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise DatasetError(
                f'{path}: `data` must be a uint8 array of shape (N, 3072), '
                f'got {getattr(data, "dtype", type(data).__name__)} '
                f'{getattr(data, "shape", "")}.')
        num_classes = self.release_classes
        if not isinstance(labels, list) or len(labels) != len(data) or \
                not all(isinstance(v, int) and 0 <= v < num_classes
                        for v in labels):
            raise DatasetError(
                f'{path}: needs a list of one label in [0, {num_classes - 1}] '
                f'per image ({len(data)} images).')
        return data, labels

    def _load_meta(self):
        meta = self._read_pickle(self.meta['filename'])
        names = meta.get(self.meta['key'])
        if not isinstance(names, list) or not all(
                isinstance(n, str) for n in names):
            raise DatasetError(
                f'{self.meta["filename"]} of {self.display_name} needs a '
                f'list of class names under {self.meta["key"]!r}.')
        self._metainfo.setdefault('classes', tuple(names))

    def load_data_list(self):
        """Read the images and labels of the split."""
        self._prepare_files()
        if not self._files_ready:  # a remote backend: MMPretrain's reader
            return super().load_data_list()
        batches = [self._read_batch(name) for name, _ in self._split_files()]
        images = np.vstack([data for data, _ in batches])
        images = images.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        labels = [label for _, batch_labels in batches
                  for label in batch_labels]
        if self.CLASSES is None:
            self._load_meta()
        return [{
            'img': img,
            'gt_label': int(label)
        } for img, label in zip(images, labels)]


@DATASETS.register_module()
class CheckedCIFAR10(_CheckedCIFARMixin, CIFAR10):
    """CIFAR-10 with clear errors and optional md5 verification.

    Reads ``<data_root>/cifar-10-batches-py/`` (``data_batch_1`` ...
    ``data_batch_5``, ``test_batch``) exactly as MMPretrain's ``CIFAR10``
    does, but checks the folder first: missing files are downloaded when
    ``download=True`` (and a failed download is reported with the folder, the
    missing files and the address to get them from), existing files are never
    overwritten, and the comparison with the official md5 sums can be turned
    off to read your own data in the CIFAR pickle format.

    Args:
        data_root (str): The folder holding ``cifar-10-batches-py``.
        split (str): ``'train'`` or ``'test'``. Defaults to ``'train'``.
        metainfo (dict, optional): Meta information, e.g. the class names.
            Defaults to None (the CIFAR-10 classes).
        download (bool): Download the archive when files are missing.
            Defaults to True.
        verify_md5 (bool): Require the files to be the official release.
            Defaults to True.
        **kwargs: Other arguments of :class:`mmpretrain.datasets.CIFAR10`.

    Example:
        >>> from mmrevode.datasets import CheckedCIFAR10
        >>> dataset = CheckedCIFAR10(  # doctest: +SKIP
        ...     data_root='data/cifar10', split='test', download=False)
        >>> len(dataset)  # doctest: +SKIP
        10000
    """
    display_name = 'CIFAR-10'


@DATASETS.register_module()
class CheckedCIFAR100(_CheckedCIFARMixin, CIFAR100):
    """CIFAR-100 with clear errors and optional md5 verification.

    Reads ``<data_root>/cifar-100-python/`` (``train``, ``test``) with the
    fine labels; otherwise as :class:`CheckedCIFAR10`.

    Args:
        data_root (str): The folder holding ``cifar-100-python``.
        split (str): ``'train'`` or ``'test'``. Defaults to ``'train'``.
        metainfo (dict, optional): Meta information. Defaults to None (the
            CIFAR-100 classes).
        download (bool): Download the archive when files are missing.
            Defaults to True.
        verify_md5 (bool): Require the files to be the official release.
            Defaults to True.
        **kwargs: Other arguments of :class:`mmpretrain.datasets.CIFAR100`.
    """
    display_name = 'CIFAR-100'
    release_classes = 100
