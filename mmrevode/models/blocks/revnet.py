"""RevNet block (Gomez et al., NeurIPS 2017), a baseline on the same engine."""
from typing import Callable, List, Optional, Tuple

from mmcv.cnn import build_activation_layer, build_norm_layer
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS
from torch import Tensor, nn

from ..reversible import ShiftStep
from .pairs import ChannelHalvesBlock

#: Kernel sizes of the convolutions of a residual function, by block type.
REVNET_KERNELS = {'basic': (3, 3), 'bottleneck': (1, 3, 1)}
REVNET_BLOCK_TYPES = tuple(REVNET_KERNELS)


class PreActResidual(BaseModule):
    """A pre-activation residual function ``F`` of a RevNet block.

    - ``'basic'``: ``N-act-conv3x3-N-act-conv3x3``, all at ``channels``.
    - ``'bottleneck'``: ``N-act-conv1x1-N-act-conv3x3-N-act-conv1x1`` with
      inner width ``channels // 4``, as in the RevNet code of Gomez et al.
      (``channels`` is the half of the unit the function acts on).

    The convolutions have no bias (each is followed by a norm, or, for the
    last one, added to the other half). With ``norm_cfg=None`` the norms are
    dropped and the convolutions get biases. With ``preact=False`` the first
    norm and activation are left out: the function starts with its first
    convolution.

    Args:
        channels (int): Channels of the input and of the output.
        block_type (str): ``'basic'`` or ``'bottleneck'``.
            Defaults to ``'basic'``.
        norm_cfg (dict, optional): Normalisation config.
            Defaults to ``dict(type='BN')``.
        act_cfg (dict): Activation config. Defaults to ``dict(type='ReLU')``.
        preact (bool): Start with a norm and an activation.
            Defaults to True.
        init_cfg (dict, optional): Initialisation config. Defaults to None.
    """

    def __init__(self,
                 channels: int,
                 block_type: str = 'basic',
                 norm_cfg: Optional[dict] = dict(type='BN'),
                 act_cfg: dict = dict(type='ReLU'),
                 preact: bool = True,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        if block_type not in REVNET_BLOCK_TYPES:
            raise ValueError(f'RevNet block_type must be one of '
                             f'{REVNET_BLOCK_TYPES}, got {block_type!r}.')
        kernels = REVNET_KERNELS[block_type]
        if block_type == 'basic':
            widths = [channels, channels, channels]
        else:
            if channels < 4:
                raise ValueError('A bottleneck RevNet function needs at '
                                 f'least 4 channels per half, got {channels}.')
            widths = [channels, channels // 4, channels // 4, channels]
        self.block_type = block_type
        self.preact = preact
        layers = []
        for k, (cin, cout) in enumerate(zip(widths, widths[1:])):
            if k > 0 or preact:
                if norm_cfg is not None:
                    layers.append(build_norm_layer(norm_cfg, cin)[1])
                layers.append(build_activation_layer(act_cfg))
            layers.append(
                nn.Conv2d(
                    cin,
                    cout,
                    kernels[k],
                    padding=kernels[k] // 2,
                    bias=norm_cfg is None))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


@MODELS.register_module()
class RevNetBlock(ChannelHalvesBlock):
    """One RevNet block on the channel halves ``(x1, x2)``.

    .. math::

        y_1 = x_1 + h F(x_2), \\qquad y_2 = x_2 + h G(y_1)

    with ``h = 1`` for the RevNet of Gomez et al. As shift steps:
    ``(x1, x2) -> (x2, y1)`` with ``(1, 0, h)`` and then
    ``(x2, y1) -> (y1, y2)`` with ``(1, 0, h)``: the Hamiltonian block's table
    row with both signs positive and a general residual function in place of
    ``K^T act(N(K x))``. The unit input is split into the halves and the
    output is their concatenation.

    ``F`` and ``G`` are pre-activation residual functions
    (:class:`PreActResidual`), ``'basic'`` (two 3x3 convolutions) or
    ``'bottleneck'`` (1x1, 3x3, 1x1 with a quarter of the half's width).
    ``G`` always starts with its norm and activation; ``F`` of the first
    block of a unit (``block_index=0``) does not, by default. Gomez et al.
    leave them out in the network's first block, whose input has just been
    through the stem's norm and activation. After a transition the input's
    zero-padded channels would reach a batch norm with zero variance, which
    returns ``bias`` exactly in the forward, but amplifies the round-off of
    the reversible reconstruction by ``1 / sqrt(eps)`` in the backward and
    puts it at the kink of the ReLU: at initialisation the float32
    gradients of RevNet-38 were then 2.5% off those of plain autograd,
    against 1e-6 without that norm.

    Args:
        channels (int): Channels of the unit (even): each half has
            ``channels // 2``.
        h (float, optional): Scale of the residual functions.
            Defaults to 1 (RevNet, :attr:`default_h`).
        norm_cfg (dict, optional): Normalisation inside ``F`` and ``G``.
            Defaults to ``dict(type='BN')``.
        act_cfg (dict): Activation inside ``F`` and ``G``. Defaults to
            ``dict(type='ReLU')``.
        block_type (str): ``'basic'`` or ``'bottleneck'``.
            Defaults to ``'basic'``.
        f_preact (bool, optional): Whether ``F`` starts with a norm and an
            activation. None: all blocks but the first of a unit.
            Defaults to None.
        block_index (int): Position of the block in its unit.
            Defaults to 0.
        init_cfg (dict, optional): Initialisation config. Defaults to None.

    Example:
        >>> import torch
        >>> from mmrevode.models import RevNetBlock
        >>> block = RevNetBlock(16, block_type='bottleneck')
        >>> a, b = block.split(torch.rand(2, 16, 8, 8))
        >>> y1, y2 = block(a, b)
        >>> x1, x2 = block.inverse(y1, y2)
        >>> bool(torch.allclose(x1, a, atol=1e-5))
        True
    """
    default_h = 1.0

    def __init__(self,
                 *args,
                 block_type: str = 'basic',
                 f_preact: Optional[bool] = None,
                 block_index: int = 0,
                 **kwargs):
        # Read by build_functions, which the base constructor calls.
        self.block_type = block_type
        self.f_preact = block_index > 0 if f_preact is None else f_preact
        super().__init__(*args, **kwargs)

    def build_functions(self, channels: int, norm_cfg: Optional[dict],
                        act_cfg: dict) -> None:
        half = self.half_channels(channels)
        self.f = PreActResidual(
            half, self.block_type, norm_cfg, act_cfg, preact=self.f_preact)
        self.g = PreActResidual(half, self.block_type, norm_cfg, act_cfg)

    @staticmethod
    def layers_of(block_type: str) -> int:
        """Layers of a block of ``block_type`` in RevNet's depth count: the
        convolutions of ``F`` and ``G`` (4 for ``'basic'``, 6 for
        ``'bottleneck'``)."""
        if block_type not in REVNET_BLOCK_TYPES:
            raise ValueError(f'RevNet block_type must be one of '
                             f'{REVNET_BLOCK_TYPES}, got {block_type!r}.')
        return 2 * len(REVNET_KERNELS[block_type])

    @property
    def num_layers(self) -> int:
        """Layers of this block (see :meth:`layers_of`)."""
        return self.layers_of(self.block_type)

    def shift_steps(self) -> List[ShiftStep]:
        return [
            ShiftStep(self.f, 1.0, 0.0, self.h),
            ShiftStep(self.g, 1.0, 0.0, self.h)
        ]

    def right_hand_side(self, a: Tensor, b: Tensor
                        ) -> Tuple[Callable, Tuple[Tensor, ...]]:
        """``(x1, x2) -> (F(x2), G(x1))`` at ``(x1, x2) = (a, b)``."""
        return lambda s: (self.f(s[1]), self.g(s[0])), (a, b)
