"""Small pieces shared by the command-line tools."""
import argparse
from typing import Optional, Sequence, Tuple

from mmengine.config import Config
from torch import nn

from mmrevode.engine.options import add_cfg_options_argument, parse_image_size


def add_input_arguments(parser: argparse.ArgumentParser,
                        shape_help: str) -> None:
    """Add ``--shape H [W]`` (default 32 32) and ``--cfg-options``."""
    parser.add_argument(
        '--shape',
        type=int,
        nargs='+',
        default=[32, 32],
        help=f'{shape_help}: H W, or one number for a square (default 32 32)')
    add_cfg_options_argument(parser)


def parse_input_arguments(parser: argparse.ArgumentParser, argv=None):
    """Parse ``argv``; ``args.shape`` becomes ``(H, W)``."""
    args = parser.parse_args(argv)
    try:
        args.shape = parse_image_size(args.shape)
    except ValueError as e:
        parser.error(f'--shape: {e}')
    return args


def load_fitting_checkpoint(model: nn.Module, path: str) -> dict:
    """Load a checkpoint's weights into ``model``, refusing weights that do
    not fit it (:class:`~mmrevode.engine.CheckpointMismatchError`) or were
    trained as another network
    (:class:`~mmrevode.engine.NetworkMismatchError`), as ``tools/test.py``
    does. Loading runs no code from the file.

    Returns:
        dict: The loaded checkpoint (``meta`` and the rest).
    """
    from mmengine.runner.checkpoint import CheckpointLoader, load_state_dict

    from mmrevode.engine import check_checkpoint_fits

    # MMEngine's registered loader for the path: the safe one for local
    # files and URLs (mmrevode.engine.install_checkpoint_loaders)
    checkpoint = CheckpointLoader.load_checkpoint(path, map_location='cpu')
    check_checkpoint_fits(model, checkpoint, path)
    load_state_dict(model, checkpoint.get('state_dict', checkpoint),
                    strict=True)
    return checkpoint


def class_names(cfg: Config, checkpoint: dict, num_classes: int,
                path: str) -> Optional[Sequence[str]]:
    """The names of the classes a classifier of ``cfg`` predicts.

    The config's test data set names them (its ``metainfo`` or its class's
    ``METAINFO``); the names a checkpoint carries
    (``meta['dataset_meta']['classes']``) must be the same, or, where the
    config names none, ``num_classes`` strings.

    Raises:
        CheckpointMismatchError: The checkpoint names other classes.
    """
    from mmpretrain.registry import DATASETS

    from mmrevode.engine import CheckpointMismatchError
    dataset = (cfg.get('test_dataloader') or {}).get('dataset') or {}
    configured = (dataset.get('metainfo') or {}).get('classes')
    if configured is None and isinstance(dataset.get('type'), str):
        cls = DATASETS.get(dataset['type'])
        configured = getattr(cls, 'METAINFO', {}).get('classes')
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    stored = ((meta if isinstance(meta, dict) else {}).get('dataset_meta')
              or {})
    stored = stored.get('classes') if isinstance(stored, dict) else None
    if stored is not None:
        names = list(stored) if isinstance(stored, (list, tuple)) else None
        if names is None or len(names) != num_classes or not all(
                isinstance(n, str) for n in names) or (
                    configured is not None and names != list(configured)):
            raise CheckpointMismatchError(
                f'The checkpoint {path} names the classes '
                f'{str(stored)[:120]}, which are not the {num_classes} '
                'classes of the config'
                + (f' ({str(list(configured))[:120]})'
                   if configured is not None else '') + '.')
    return list(configured) if configured is not None else stored


#: Transforms that make images of one size, the argument that gives it and
#: its order: MMCV's Resize and CenterCrop take (w, h), MMPretrain's crops
#: (h, w).
_SIZING_TRANSFORMS = dict(
    CenterCrop=('crop_size', 'wh'),
    RandomCrop=('crop_size', 'hw'),
    RandomResizedCrop=('scale', 'hw'),
    Resize=('scale', 'wh'))


def _made_size(transform: dict) -> Optional[Tuple[int, int]]:
    """``(H, W)`` of the images ``transform`` makes, if one fixed size."""
    name = str(transform.get('type', '')).split('.')[-1]
    if name not in _SIZING_TRANSFORMS or transform.get('keep_ratio'):
        return None
    key, order = _SIZING_TRANSFORMS[name]
    size = transform.get(key)
    if isinstance(size, int) and not isinstance(size, bool):
        return size, size
    if isinstance(size, (list, tuple)) and len(size) == 2 and all(
            isinstance(v, int) for v in size):
        return (size[1], size[0]) if order == 'wh' else (size[0], size[1])
    return None


def _pipeline(cfg: Config, loader: str) -> list:
    dataset = (cfg.get(loader) or {}).get('dataset') or {}
    while 'pipeline' not in dataset and isinstance(
            dataset.get('dataset'), dict):
        dataset = dataset['dataset']  # dataset wrappers
    return list(dataset.get('pipeline') or [])


def config_image_size(cfg: Config) -> Tuple[Optional[Tuple[int, int]],
                                             bool]:
    """The image size the model of ``cfg`` works at.

    Returns:
        tuple: ``(size, resized)``. ``resized`` is True when the test
        pipeline itself makes images of ``size`` (so any image will do);
        otherwise ``size`` is the size the model was trained at (the crop
        of the training pipeline), which the test images are expected to
        have, or None if the config does not tell.
    """
    for loader, resized in (('test_dataloader', True),
                            ('train_dataloader', False)):
        sizes = [_made_size(t) for t in _pipeline(cfg, loader)
                 if isinstance(t, dict)]
        sizes = [size for size in sizes if size is not None]
        if sizes:
            return sizes[-1], resized
    return None, False


def build_from_config(config: str,
                      cfg_options: Optional[dict] = None
                      ) -> Tuple[Config, nn.Module]:
    """Read a config (importing its ``custom_imports``), merge
    ``cfg_options`` (unknown keys refused, as by the runner scripts) and
    build its model in the config's default scope.

    Returns:
        tuple: ``(cfg, model)``.
    """
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS

    from mmrevode.engine.launcher import load_config
    from mmrevode.engine.options import merge_cfg_options
    cfg = load_config(config)
    merge_cfg_options(cfg, cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    return cfg, MODELS.build(cfg.model)
