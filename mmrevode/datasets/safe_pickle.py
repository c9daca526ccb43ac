"""Reading the pickles of data-set releases without running their code."""
from typing import Any

from ..fileio import (NUMPY_TYPES, RecordUnpickler, UnsafePickleError, loads,
                      numpy_globals)
from .utils import DatasetError


class DataUnpickler(RecordUnpickler):
    """Builds what a CIFAR release holds and nothing else.

    Dicts, lists, strings, bytes and ints, and NumPy arrays of numbers
    (:mod:`mmrevode.fileio.numpy_records`); no other global, no object
    state, no call of anything the file names (see
    :class:`mmrevode.fileio.RecordUnpickler`).
    """
    globals = numpy_globals()
    result_types = NUMPY_TYPES


def load_data_pickle(data: bytes, path: str, encoding: str = 'latin1') -> Any:
    """Unpickle the bytes of a data-set file with :class:`DataUnpickler`.

    Args:
        data (bytes): The file's content.
        path (str): The file's path, for the error message.
        encoding (str): How to decode Python 2 strings. Defaults to
            ``'latin1'`` (as the CIFAR releases need).

    Returns:
        The unpickled object.

    Raises:
        DatasetError: The file is truncated, corrupt, not a pickle, or asks
            for anything beyond plain data. The message names the file.
    """
    try:
        return loads(data, DataUnpickler, encoding=encoding)
    except UnsafePickleError as e:
        reason = (f'it holds {e}, where data-set files hold only numbers, '
                  'strings, lists, dicts and numeric arrays')
    except RecursionError:
        reason = 'nested too deeply'
    except MemoryError:
        reason = 'too large to read'
    except Exception as e:  # truncated, garbage, refused global, ...
        reason = f'{type(e).__name__}: {e}'
    reason = ' '.join(reason.split())[:300]
    raise DatasetError(
        f'{path} cannot be read as a data-set pickle ({len(data)} bytes): '
        f'{reason}. Replace it with the file of the official release, or '
        'write your data with mmrevode.datasets.write_cifar10 / '
        'write_cifar100.')
