"""Reversible backbones registered in MMPretrain's ``MODELS``."""
from .base_reversible_net import BaseReversibleNet, ChannelPadDownsample
from .hamiltonian_net import HamiltonianNet
from .leapfrog_net import LeapfrogNet
from .midpoint_net import MidpointNet

__all__ = [
    'BaseReversibleNet', 'ChannelPadDownsample', 'HamiltonianNet',
    'LeapfrogNet', 'MidpointNet'
]
