"""Datasets registered into MMPretrain's ``DATASETS``."""
from .cifar import CheckedCIFAR10, CheckedCIFAR100
from .digits import DIGITS_CATEGORIES, Digits
from .stl10 import STL10, STL10_CATEGORIES
from .subset import ClassBalancedSubset
from .transforms import LoadImageIfMissing
from .utils import DatasetError, DatasetNotFoundError
from .writers import write_cifar10, write_cifar100, write_stl10

__all__ = [
    'CheckedCIFAR10', 'CheckedCIFAR100', 'ClassBalancedSubset',
    'DIGITS_CATEGORIES', 'DatasetError', 'DatasetNotFoundError', 'Digits',
    'LoadImageIfMissing',
    'STL10', 'STL10_CATEGORIES',
    'write_cifar10', 'write_cifar100', 'write_stl10'
]
