"""Reversible blocks, one file per scheme, and the step functions."""
from .dynamics import right_hand_side
from .hamiltonian import HamiltonianBlock
from .layers import AntisymmetricConvLayer, SymmetricConvLayer
from .leapfrog import LeapfrogBlock
from .midpoint import MidpointBlock
from .pairs import ChannelHalvesBlock, TwoStateBlock
from .revnet import PreActResidual, RevNetBlock

__all__ = [
    'AntisymmetricConvLayer', 'ChannelHalvesBlock', 'HamiltonianBlock',
    'LeapfrogBlock', 'MidpointBlock', 'PreActResidual', 'RevNetBlock',
    'SymmetricConvLayer', 'TwoStateBlock', 'right_hand_side'
]
