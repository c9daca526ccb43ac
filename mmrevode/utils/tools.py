"""Small pieces shared by the command-line tools."""
from typing import Optional, Sequence, Tuple

from mmengine.config import Config
from torch import nn


def parse_image_size(values: Sequence[int]) -> Tuple[int, int]:
    """``--shape H W`` or ``--shape S`` (a square) as ``(H, W)``.

    Raises:
        ValueError: For other numbers of values, or sizes below 1.
    """
    values = list(values)
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or min(values) < 1:
        raise ValueError('an image size is H W or one size for a square, '
                         f'got {values}.')
    return values[0], values[1]


def build_from_config(config: str,
                      cfg_options: Optional[dict] = None
                      ) -> Tuple[Config, nn.Module]:
    """Read a config (importing its ``custom_imports``), merge
    ``cfg_options`` and build its model in the config's default scope.

    Returns:
        tuple: ``(cfg, model)``.
    """
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS

    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    return cfg, MODELS.build(cfg.model)
