"""CIFAR-10/100 that say clearly what is wrong with the data folder."""
import os.path as osp
from typing import List, Optional

import mmengine.dist as dist
from mmpretrain.datasets import CIFAR10, CIFAR100
from mmpretrain.datasets.utils import check_md5, download_and_extract_archive
from mmpretrain.registry import DATASETS

from .utils import DatasetError, DatasetNotFoundError, missing_data_message


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
      (your own data, or data generated for tests).
    """
    #: Printed name of the data set.
    display_name = 'CIFAR'

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
            if dist.is_main_process():
                try:
                    download_and_extract_archive(
                        self.url,
                        root,
                        filename=self.filename,
                        md5=self.tgz_md5)
                except Exception as e:  # no internet, disk full, bad archive
                    reason = f'{type(e).__name__}: {e}'
            dist.barrier()
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

    def load_data_list(self):
        self._prepare_files()
        return super().load_data_list()


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
