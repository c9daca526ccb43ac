"""The continuous-time system a block discretises: its right-hand side.

========================  =========================================  =====
block                     right-hand side                            state
========================  =========================================  =====
``HamiltonianBlock``      ``(Y, Z) -> (F1(Z), -F2(Y))``              pair
``RevNetBlock``           ``(x1, x2) -> (F(x2), G(x1))``             pair
``LeapfrogBlock``         ``(Y, V) -> (V, -F(Y))`` (``Y'' = -F(Y)``)  pair
``MidpointBlock``         ``Y -> F(Y)``                              one
ResNet ``BasicBlock``     ``x -> N(conv(act(N(conv(x)))))``          one
========================  =========================================  =====

A reversible block states its own (:meth:`ReversibleBlock.right_hand_side
<mmrevode.models.reversible.ReversibleBlock.right_hand_side>`); MMPretrain's
``BasicBlock`` (that of :class:`~mmrevode.models.CifarResNet` and of
MMPretrain's ResNets) is read here. The Hamiltonian, Leapfrog and Midpoint
Jacobians have (up to round-off) purely imaginary eigenvalues; RevNet's and
ResNet's have eigenvalues with real parts of both signs.
"""
from typing import Callable, Tuple

from mmpretrain.models.backbones.resnet import BasicBlock
from torch import Tensor, nn

from ..reversible import ReversibleBlock


def basic_block_right_hand_side(
        block: BasicBlock, x: Tensor) -> Tuple[Callable, Tuple[Tensor]]:
    """``x -> N(conv(act(N(conv(x)))))``, the residual branch of a ResNet
    block that keeps the shape of its input, at ``x``."""
    if block.downsample is not None or block.conv1.stride != (1, 1):
        raise ValueError('This ResNet block changes the shape of its input; '
                         'pick another block (its right-hand side is not a '
                         'map of the state to itself).')

    def rhs(s):
        out = block.relu(block.norm1(block.conv1(s[0])))
        return (block.norm2(block.conv2(out)), )

    return rhs, (x, )


def right_hand_side(block: nn.Module, state: Tuple[Tensor, ...]
                    ) -> Tuple[Callable, Tuple[Tensor, ...]]:
    """The block's continuous-time right-hand side and its state.

    Args:
        block (nn.Module): A :class:`ReversibleBlock` or a ResNet
            ``BasicBlock``.
        state (tuple[Tensor]): The block's input: the pair of a reversible
            block, the one tensor of a ResNet block.

    Returns:
        tuple: ``(rhs, point)``: ``rhs`` maps a tuple of tensors shaped like
        ``point`` to a tuple of the same shapes; ``point`` is the state at
        which to linearise.
    """
    if isinstance(block, ReversibleBlock):
        return block.right_hand_side(*state)
    if isinstance(block, BasicBlock):
        return basic_block_right_hand_side(block, *state)
    raise TypeError(f'No right-hand side is known for {type(block).__name__}'
                    '; supported: the reversible blocks (ReversibleBlock) '
                    'and BasicBlock.')
