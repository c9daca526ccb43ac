"""scikit-learn's handwritten digits, as a small 32x32 RGB data set."""
from typing import List, Optional

import numpy as np
from mmpretrain.datasets import BaseDataset
from mmpretrain.registry import DATASETS

from .utils import check_split

DIGITS_CATEGORIES = tuple(str(i) for i in range(10))


def load_digits_images(size: int = 32) -> tuple:
    """scikit-learn's 1,797 digits as uint8 RGB images of ``size`` pixels.

    The 8x8 images (grey levels 0 to 16) are scaled to 0-255, upsampled
    bilinearly to ``size`` x ``size`` and repeated over three channels.

    Args:
        size (int): Side of the returned images. Defaults to 32.

    Returns:
        tuple: ``(images, labels)``: a uint8 array (N, size, size, 3) and an
        int64 array (N, ) of labels 0 to 9.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise ImportError(
            'The Digits data set is read from scikit-learn, which is not '
            'installed: pip install scikit-learn') from e
    import torch
    import torch.nn.functional as F

    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32)[:, None] * 255 / 16
    x = F.interpolate(x, size=size, mode='bilinear', align_corners=False)
    x = x.clamp(0, 255).round().to(torch.uint8).repeat(1, 3, 1, 1)
    images = np.ascontiguousarray(x.permute(0, 2, 3, 1).numpy())
    return images, digits.target.astype(np.int64)


@DATASETS.register_module()
class Digits(BaseDataset):
    """scikit-learn's handwritten digits, read with no download.

    The 1,797 8x8 images of ``sklearn.datasets.load_digits`` (UCI optical
    recognition of handwritten digits), upsampled bilinearly to 32x32 and
    repeated over three channels, so that the CIFAR networks and pipelines
    run on them unchanged. The split is stratified and fixed by ``seed``:
    with the defaults, 1,347 training and 450 test images, the same every
    time and on every machine. Classes ``'0'`` to ``'9'``.

    A data set for a first run on a machine without CIFAR: a small network
    learns it to about 98% in a minute of CPU time.

    Args:
        split (str): ``'train'`` or ``'test'``. Defaults to ``'train'``.
        test_fraction (float): Fraction of the images in the test split,
            in (0, 1). Defaults to 0.25.
        seed (int): Seed of the split. Defaults to 0.
        image_size (int): Side of the images after upsampling (>= 8).
            Defaults to 32.
        metainfo (dict, optional): Meta information. Defaults to None (the
            classes ``'0'`` to ``'9'``).
        **kwargs: Other arguments of :class:`mmpretrain.datasets.BaseDataset`
            (``pipeline``, ``test_mode``, ``indices``, ...). ``data_root``
            is accepted and ignored.

    Example:
        >>> from mmrevode.datasets import Digits
        >>> train, test = Digits(split='train'), Digits(split='test')
        >>> len(train), len(test), train[0]['img'].shape
        (1347, 450, (32, 32, 3))
    """
    METAINFO = {'classes': DIGITS_CATEGORIES}

    def __init__(self,
                 split: str = 'train',
                 test_fraction: float = 0.25,
                 seed: int = 0,
                 image_size: int = 32,
                 metainfo: Optional[dict] = None,
                 data_root: str = '',
                 test_mode: bool = False,
                 **kwargs):
        check_split('Digits', split)
        if isinstance(test_fraction, bool) or not isinstance(
                test_fraction, (int, float)) or not 0 < test_fraction < 1:
            raise ValueError('Digits: test_fraction must be a number in '
                             f'(0, 1), got {test_fraction!r}.')
        if isinstance(image_size, bool) or not isinstance(
                image_size, int) or image_size < 8:
            raise ValueError('Digits: image_size must be an int >= 8, got '
                             f'{image_size!r}.')
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f'Digits: seed must be an int, got {seed!r}.')
        self.split = split
        self.test_fraction = test_fraction
        self.seed = seed
        self.image_size = image_size
        super().__init__(
            ann_file='',
            metainfo=metainfo,
            data_root=data_root,
            test_mode=test_mode,
            **kwargs)

    def load_data_list(self) -> List[dict]:
        """Load the digits and keep the split's images."""
        from sklearn.model_selection import train_test_split

        images, labels = load_digits_images(self.image_size)
        train_idx, test_idx = train_test_split(
            np.arange(len(labels)),
            test_size=self.test_fraction,
            stratify=labels,
            random_state=self.seed)
        keep = train_idx if self.split == 'train' else test_idx
        return [
            dict(img=images[i], gt_label=int(labels[i])) for i in keep
        ]

    def extra_repr(self) -> List[str]:
        """The extra repr information of the dataset."""
        return [
            f'Split: \t{self.split}',
            f'Test fraction: \t{self.test_fraction}',
            f'Seed: \t{self.seed}',
        ]
