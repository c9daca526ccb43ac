"""Backbones registered in MMPretrain's ``MODELS``: the reversible networks
and the CIFAR ResNet baseline."""
from .base_reversible_net import BaseReversibleNet, ChannelPadDownsample
from .cifar_resnet import CifarResNet, PadShortcut
from .defined_backbone import DefinedBackbone
from .hamiltonian_net import HamiltonianNet
from .leapfrog_net import LeapfrogNet
from .midpoint_net import MidpointNet
from .revnet import RevNet

__all__ = [
    'BaseReversibleNet', 'ChannelPadDownsample', 'CifarResNet',
    'DefinedBackbone', 'HamiltonianNet', 'LeapfrogNet', 'MidpointNet',
    'PadShortcut', 'RevNet'
]
