"""Reading the pickles of data-set releases without running their code."""
import io
import pickle
from typing import Any, FrozenSet, Tuple

from .utils import DatasetError

#: The globals a CIFAR release pickle may name: NumPy's array
#: reconstruction (``_frombuffer`` with pickle protocol 5) and dtypes (the
#: arrays), and ``_codecs.encode`` (bytes pickled by Python 3 with protocol
#: 2). Dicts, lists, str, bytes and ints need no global.
DATA_PICKLE_GLOBALS: FrozenSet[Tuple[str, str]] = frozenset({
    ('numpy.core.multiarray', '_reconstruct'),
    ('numpy._core.multiarray', '_reconstruct'),
    ('numpy.core.numeric', '_frombuffer'),
    ('numpy._core.numeric', '_frombuffer'),
    ('numpy', 'ndarray'),
    ('numpy', 'dtype'),
    ('_codecs', 'encode'),
})


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that builds only the objects of a data release.

    ``find_class`` admits the pairs in :data:`DATA_PICKLE_GLOBALS` and
    refuses everything else, so a crafted file cannot make it import or
    call anything (``os.system``, ``eval``, ...).
    """

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in DATA_PICKLE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f'refused the global {module}.{name}, which a data release does '
            'not hold (it could run code)')


def load_data_pickle(data: bytes, path: str, encoding: str = 'latin1'):
    """Unpickle the bytes of a data-set file with
    :class:`RestrictedUnpickler`.

    Args:
        data (bytes): The file's content.
        path (str): The file's path, for the error message.
        encoding (str): How to decode Python 2 strings. Defaults to
            ``'latin1'`` (as the CIFAR releases need).

    Returns:
        The unpickled object.

    Raises:
        DatasetError: The file is truncated, corrupt, not a pickle, or names
            a global outside :data:`DATA_PICKLE_GLOBALS`. The message names
            the file.
    """
    try:
        return RestrictedUnpickler(
            io.BytesIO(data), encoding=encoding).load()
    except Exception as e:  # truncated, garbage, refused global, ...
        raise DatasetError(
            f'{path} cannot be read as a data-set pickle ({len(data)} bytes): '
            f'{type(e).__name__}: {e}. Replace it with the file of the '
            'official release, or write your data with '
            'mmrevode.datasets.write_cifar10 / write_cifar100.') from None
