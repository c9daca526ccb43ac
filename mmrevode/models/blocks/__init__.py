"""Reversible blocks, one file per scheme, and the step functions."""
from .hamiltonian import HamiltonianBlock
from .layers import AntisymmetricConvLayer, SymmetricConvLayer
from .leapfrog import LeapfrogBlock
from .midpoint import MidpointBlock
from .revnet import PreActResidual, RevNetBlock

__all__ = [
    'AntisymmetricConvLayer', 'HamiltonianBlock', 'LeapfrogBlock',
    'MidpointBlock', 'PreActResidual', 'RevNetBlock', 'SymmetricConvLayer'
]
