"""Midpoint block: the two-step explicit midpoint (leapfrog-in-time) rule."""
from typing import Callable, List, Optional, Tuple

from mmpretrain.registry import MODELS
from torch import Tensor

from ..reversible import ShiftStep
from .layers import AntisymmetricConvLayer
from .pairs import TwoStateBlock


@MODELS.register_module()
class MidpointBlock(TwoStateBlock):
    """``Y_{j+1} = Y_{j-1} + 2h F_j(Y_j)``, ``F = act(N((K - K^T) Y))``.

    The state is the pair ``(Y_{j-1}, Y_j)`` and each block is one shift step
    with ``(1, 0, 2h)``. A unit starts from ``(Y_0, Y_0)``, and its first block
    takes a forward-Euler step ``Y_1 = Y_0 + h F_0(Y_0)`` (coefficients
    ``(1, 0, h)``), since the rule needs two past states. The operator and
    the first step are not fixed by the paper's text; these are the choices
    of this implementation. The unit's output is the last state.

    Args:
        channels (int): Channels of the state.
        h (float, optional): Step size: block 0 steps by ``h``, the others
            by ``2h``. Defaults to 0.1 (:attr:`default_h`, that of
            :class:`MidpointNet`, chosen for learning and reconstruction
            drift together).
        norm_cfg (dict, optional): Normalisation inside ``F``. Defaults to
            ``dict(type='BN')``.
        act_cfg (dict): Activation inside ``F``. Defaults to
            ``dict(type='ReLU')``.
        block_index (int): Position of the block in its unit; block 0 takes
            the forward-Euler step. Defaults to 0.
        init_cfg (dict, optional): Initialisation config. Defaults to None.
    """
    default_h = 0.1
    num_layers = 2  # K and K^T (applied as one convolution with K - K^T)

    def __init__(self, *args, block_index: int = 0, **kwargs):
        super().__init__(*args, **kwargs)
        self.block_index = block_index

    def build_functions(self, channels: int, norm_cfg: Optional[dict],
                        act_cfg: dict) -> None:
        self.f = AntisymmetricConvLayer(
            channels, norm_cfg=norm_cfg, act_cfg=act_cfg)

    def shift_steps(self) -> List[ShiftStep]:
        gamma = self.h if self.block_index == 0 else 2 * self.h
        return [ShiftStep(self.f, 1.0, 0.0, gamma)]

    def right_hand_side(self, a: Tensor, b: Tensor
                        ) -> Tuple[Callable, Tuple[Tensor, ...]]:
        """``Y -> F(Y)`` at the current state ``Y_j = b``."""
        return lambda s: (self.f(s[0]), ), (b, )
