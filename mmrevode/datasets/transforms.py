"""A test-pipeline transform that reads an image file when no image is given."""
import mmcv
from mmcv.transforms import BaseTransform
from mmpretrain.registry import TRANSFORMS


@TRANSFORMS.register_module()
class LoadImageIfMissing(BaseTransform):
    """Read ``results['img_path']`` unless ``results`` holds an ``img``.

    The data sets of mmrevode (CIFAR, STL-10, the digits) hold their images
    as arrays, so their pipelines need no loading; tools that feed a test
    pipeline a file (MMPretrain's ``vis_cam.py``: ``{'img_path': PATH}``)
    need one. This transform serves both: a sample with an ``img`` passes
    unchanged, a path is read in ``channel_order`` (the data sets hold RGB
    images, MMCV reads BGR by default).

    Required keys: ``img`` or ``img_path``. Added keys: ``img``,
    ``img_shape``, ``ori_shape`` (when read).

    Args:
        channel_order (str): ``'rgb'`` or ``'bgr'``. Defaults to ``'rgb'``.
    """

    def __init__(self, channel_order: str = 'rgb'):
        if channel_order not in ('rgb', 'bgr'):
            raise ValueError('LoadImageIfMissing: channel_order must be '
                             f"'rgb' or 'bgr', got {channel_order!r}.")
        self.channel_order = channel_order

    def transform(self, results: dict) -> dict:
        if results.get('img') is not None:
            return results
        img = mmcv.imread(
            results['img_path'], 'color', channel_order=self.channel_order)
        if img is None:
            raise ValueError(f'Cannot read the image {results["img_path"]}.')
        results['img'] = img
        results['img_shape'] = results['ori_shape'] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return f"{type(self).__name__}(channel_order='{self.channel_order}')"
