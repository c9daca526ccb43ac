"""Helpers shared by the datasets: the missing-data error and its message."""
import os.path as osp
from typing import Optional, Sequence

import mmengine.dist as dist
from mmpretrain.datasets.utils import download_and_extract_archive


class DatasetError(RuntimeError):
    """The files of a data set are missing or not what they should be.

    The message says which folder was read, what is wrong and how to fix it.
    ``tools/train.py`` and ``tools/test.py`` print it without a traceback.
    """


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """Files of a data set are missing (and could not be downloaded)."""


def check_split(owner: str, split: str,
                splits: Sequence[str] = ('train', 'test')) -> None:
    """Raise a ``ValueError`` naming ``owner`` unless ``split`` is one of
    ``splits``."""
    if split not in splits:
        raise ValueError(f'{owner}: split must be one of {tuple(splits)}, '
                         f'got {split!r}.')


def missing_data_message(name: str,
                         folder: str,
                         missing: Sequence[str],
                         url: str,
                         data_root: str,
                         archive: str,
                         reason: Optional[str] = None) -> str:
    """Compose the message of a :class:`DatasetNotFoundError`.

    Args:
        name (str): The data set's name, e.g. ``'CIFAR-10'``.
        folder (str): The folder that should hold the files.
        missing (Sequence[str]): The missing file names.
        url (str): Where the archive can be downloaded.
        data_root (str): Where the archive must be extracted.
        archive (str): The archive's file name.
        reason (str, optional): Why an automatic download failed, if one was
            tried. Defaults to None.
    """
    lines = [
        f'{name} was not found: the folder {osp.abspath(folder)} lacks '
        f'{", ".join(missing)}.'
    ]
    if reason is not None:
        lines.append(f'Downloading it automatically failed ({reason}).')
    lines.append(
        f'Download {archive} from {url} and extract it into '
        f'{osp.abspath(data_root)} (it unpacks to '
        f'{osp.basename(osp.normpath(folder))}/), or set the datasets\' '
        '`data_root` in the config to the folder that holds it.')
    return '\n'.join(lines)


def try_download(url: str, data_root: str, archive: str,
                 md5: Optional[str]) -> Optional[str]:
    """Download and extract an archive into ``data_root`` on the main
    process (the others wait).

    Returns:
        str | None: Why the download failed (no internet, full disk, bad
        archive), or None if it worked.
    """
    reason = None
    if dist.is_main_process():
        try:
            download_and_extract_archive(
                url, data_root, filename=archive, md5=md5)
        except Exception as e:  # no internet, disk full, bad archive
            reason = f'{type(e).__name__}: {e}'
    dist.barrier()
    return reason
