"""Midpoint network (Chang et al., AAAI 2018)."""
from mmpretrain.registry import MODELS

from ..blocks import MidpointBlock
from .base_reversible_net import BaseReversibleNet


@MODELS.register_module()
class MidpointNet(BaseReversibleNet):
    """Midpoint reversible network.

    Each unit integrates ``Y' = act(N((K - K^T) Y))`` with the explicit
    midpoint rule ``Y_{j+1} = Y_{j-1} + 2h F_j(Y_j)`` (:class:`MidpointBlock`),
    starting with a forward-Euler step.

    Presets: ``'62'``, ``'92'``, ``'182'`` with 10, 15 and 30 blocks per unit
    (depth ``6n + 2``), widths 32-64-128.

    Args:
        arch (str | int | dict): Preset or ``dict(blocks, widths)``.
            Defaults to ``'62'``.
        h (float): Step size. Defaults to 0.1, chosen for learning and
            drift together: at 0.02 a unit is nearly the identity and
            learns slowly (Midpoint-62, 3 epochs on the digits: 79% against
            87% at 0.1; the digits configs over three seeds: 97.8% against
            98.3%), while the float32 reconstruction error of Midpoint-182
            at 0.1, 5e-7, stays below that of the other schemes (see
            docs/performance.md, "Step size: learning against drift").
            Recorded in checkpoints: weights trained at another ``h`` are
            refused at load (``check_definition=False`` runs them on purpose).
        **kwargs: See :class:`BaseReversibleNet`.

    Example:
        >>> import torch
        >>> from mmrevode.models import MidpointNet
        >>> model = MidpointNet(arch='62')
        >>> print(tuple(model(torch.rand(2, 3, 32, 32))[-1].shape))
        (2, 128, 8, 8)
    """
    block_cls = MidpointBlock
    default_h = 0.1
    #: The depths of the paper's two-step networks (Leapfrog has the same).
    arch_settings = {
        '62': dict(blocks=[10, 10, 10], widths=[32, 64, 128]),
        '92': dict(blocks=[15, 15, 15], widths=[32, 64, 128]),
        '182': dict(blocks=[30, 30, 30], widths=[32, 64, 128]),
    }

    def __init__(self, arch='62', **kwargs):
        super().__init__(arch, **kwargs)

    def make_block(self, channels, block_index, **kwargs) -> MidpointBlock:
        """The first block of a unit takes the forward-Euler step."""
        return self.block_cls(channels, block_index=block_index, **kwargs)
