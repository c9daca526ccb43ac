"""RevNet (Gomez et al., NeurIPS 2017) in the layout of the ODE networks."""
from mmpretrain.registry import MODELS

from ..blocks import RevNetBlock
from .base_reversible_net import BaseReversibleNet


@MODELS.register_module()
class RevNet(BaseReversibleNet):
    """The reversible residual network of Gomez et al., as a baseline.

    Each unit is a sequence of :class:`RevNetBlock` s,
    ``y1 = x1 + F(x2)``, ``y2 = x2 + G(y1)`` on the two channel halves, run
    by the same reversible engine as the Hamiltonian, Midpoint and Leapfrog
    networks, in the same frame: a 3x3 stem, units joined by 2x2 average
    pooling and zero-padding of each half's channels, a final norm and
    activation. (Gomez et al. downsample inside the first block of a stage
    with strided convolutions; here the transition between units is the
    same parameter-free one as for the ODE networks, so the comparison
    differs only in the blocks.)

    Presets, with RevNet's own depth count:

    =========  ======  ===========  ==========  =======
    arch       blocks  widths       block type  depth
    =========  ======  ===========  ==========  =======
    ``'38'``   3-3-3   32-64-112    basic       12n + 2
    ``'110'``  9-9-9   32-64-128    basic       12n + 2
    ``'164'``  9-9-9   128-256-512  bottleneck  18n + 2
    =========  ======  ===========  ==========  =======

    RevNet-164's widths are those of Gomez et al.'s code (32-64-128 times the
    bottleneck expansion 4): each half of 64-128-256 channels goes through a
    1x1-3x3-1x1 bottleneck of width 16-32-64.

    Args:
        arch (str | int | dict): A preset, or ``dict(blocks=[...],
            widths=[...])`` with even widths and optionally
            ``block_type='basic' | 'bottleneck'``. Defaults to ``'38'``.
        h (float): Scale of the residual functions; 1 is RevNet.
            Recorded in checkpoints: weights trained at another ``h`` are
            refused at load (``check_definition=False`` runs them on
            purpose). Defaults to 1.
        block_cfg (dict, optional): Extra keyword arguments of every
            :class:`RevNetBlock`. A ``block_type`` given here overrides the
            arch's. Defaults to None.
        **kwargs: See :class:`BaseReversibleNet`.

    Example:
        >>> import torch
        >>> from mmrevode.models import RevNet
        >>> model = RevNet(arch='164')
        >>> model.block_type, model.units[0].blocks[0].f.layers[0].kernel_size
        ('bottleneck', (1, 1))
        >>> print(tuple(model(torch.rand(2, 3, 32, 32))[-1].shape))
        (2, 512, 8, 8)
    """
    block_cls = RevNetBlock
    default_h = 1.0
    pad_groups = 2
    arch_settings = {
        '38': dict(blocks=[3, 3, 3], widths=[32, 64, 112], block_type='basic'),
        '110': dict(
            blocks=[9, 9, 9], widths=[32, 64, 128], block_type='basic'),
        '164': dict(
            blocks=[9, 9, 9],
            widths=[128, 256, 512],
            block_type='bottleneck'),
    }

    def __init__(self, arch='38', **kwargs):
        super().__init__(arch, **kwargs)
        self.block_type = self.units[0].blocks[0].block_type

    def definition(self) -> dict:
        """That of :class:`BaseReversibleNet`, with the block type that
        the blocks have (from the arch or ``block_cfg``) in ``arch``."""
        definition = super().definition()
        block_cfg = dict(definition['block_cfg'])
        block_cfg.pop('block_type', None)
        return dict(
            definition,
            arch=dict(definition['arch'], block_type=self.block_type),
            block_cfg=block_cfg)

    @classmethod
    def layers_per_block(cls, arch: dict) -> int:
        """Layers of a block of the arch's ``block_type`` (4 for
        ``'basic'``, 6 for ``'bottleneck'``, :meth:`RevNetBlock.layers_of`;
        a ``block_type`` in ``block_cfg`` counts in :attr:`depth`)."""
        return RevNetBlock.layers_of(arch.get('block_type', 'basic'))

    def make_block(self, channels, block_index, **kwargs) -> RevNetBlock:
        """``F`` of a unit's first block starts without norm and activation
        (see :class:`RevNetBlock`); the arch's ``block_type`` applies unless
        ``block_cfg`` names one."""
        kwargs.setdefault('block_type', self.arch.get('block_type', 'basic'))
        return self.block_cls(channels, block_index=block_index, **kwargs)
