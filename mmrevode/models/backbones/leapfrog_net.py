"""Leapfrog network (Chang et al., AAAI 2018)."""
from mmpretrain.registry import MODELS

from ..blocks import LeapfrogBlock
from .base_reversible_net import BaseReversibleNet
from .midpoint_net import MidpointNet


@MODELS.register_module()
class LeapfrogNet(BaseReversibleNet):
    """Leapfrog reversible network.

    Each unit integrates the second-order system
    ``Y'' = -K^T act(N(K Y))`` with the leapfrog rule
    ``Y_{j+1} = 2 Y_j - Y_{j-1} - h^2 F_j(Y_j)`` (:class:`LeapfrogBlock`).

    Presets: those of :class:`MidpointNet`, ``'62'``, ``'92'``, ``'182'`` with
    10, 15 and 30 blocks per unit (depth ``6n + 2``), widths 32-64-128.

    Args:
        arch (str | int | dict): Preset or ``dict(blocks, widths)``.
            Defaults to ``'62'``.
        h (float): Step size. Defaults to 0.1: 99.0% on the digits config
            over three seeds, and a float32 reconstruction error of 1.4e-6
            at Leapfrog-182 (see docs/performance.md, "Step size: learning
            against drift").
            Recorded in checkpoints: weights trained at another ``h`` are
            refused at load (``check_definition=False`` runs them on purpose).
        start (str): ``'rest'`` (``Y_{-1} = Y_0``, default) or ``'zero'``
            (``Y_{-1} = 0``, the paper's Eq. (17) literally; the state's norm
            then grows about ``n``-fold per unit). Recorded in the
            checkpoints' definition. Defaults to ``'rest'``.
        **kwargs: See :class:`BaseReversibleNet`.

    Example:
        >>> import torch
        >>> from mmrevode.models import LeapfrogNet
        >>> model = LeapfrogNet(arch='62', start='zero', out_indices=(0, 2))
        >>> for out in model(torch.rand(2, 3, 32, 32)):
        ...     print(tuple(out.shape))
        (2, 32, 32, 32)
        (2, 128, 8, 8)
    """
    block_cls = LeapfrogBlock
    default_h = 0.1
    arch_settings = MidpointNet.arch_settings

    def __init__(self, arch='62', start='rest', block_cfg=None, **kwargs):
        block_cfg = dict(block_cfg or {})
        block_cfg.setdefault('start', start)
        super().__init__(arch, block_cfg=block_cfg, **kwargs)
        self.start = self.block_cfg['start']

    def definition(self) -> dict:
        """That of :class:`BaseReversibleNet`, with ``start`` (given here
        or in ``block_cfg``) as its own key."""
        definition = super().definition()
        block_cfg = dict(definition['block_cfg'])
        del block_cfg['start']
        return dict(definition, start=self.start, block_cfg=block_cfg)
