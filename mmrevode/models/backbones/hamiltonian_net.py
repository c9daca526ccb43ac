"""Hamiltonian network (Chang et al., AAAI 2018)."""
from mmpretrain.registry import MODELS

from ..blocks import HamiltonianBlock
from .base_reversible_net import BaseReversibleNet


@MODELS.register_module()
class HamiltonianNet(BaseReversibleNet):
    """Hamiltonian reversible network.

    Each unit integrates the Hamiltonian system
    ``Y' = K1^T act(N(K1 Z))``, ``Z' = -K2^T act(N(K2 Y))`` on the two channel
    halves ``(Y, Z)`` with the Verlet scheme (:class:`HamiltonianBlock`). The
    Jacobian of the right-hand side has imaginary eigenvalues, so the
    forward and backward propagation are stable at any depth.

    Presets: ``'38'``, ``'74'``, ``'110'``, ``'218'``, ``'1202'`` with 3, 6, 9,
    18 and 100 blocks per unit (depth ``12n + 2``: four convolutions per
    block), widths 32-64-112 (38, 74) or 32-64-128. The detection presets
    ``'det-38'`` and ``'det-74'`` have four units of widths 64-128-256-512 and
    are meant for ``stem_type='imagenet'`` and ``out_indices=(0, 1, 2, 3)``.

    Args:
        arch (str | int | dict): Preset or ``dict(blocks, widths)``; widths
            must be even. Defaults to ``'74'``.
        h (float): Step size. Defaults to 0.1 (the authors' code): 99.1%
            on the digits config over three seeds, and a float32
            reconstruction error of 1.9e-6 at Hamiltonian-218 (see
            docs/performance.md, "Step size: learning against drift").
            Recorded in checkpoints: weights trained at another ``h`` are
            refused at load (``check_definition=False`` runs them on purpose).
        **kwargs: See :class:`BaseReversibleNet`.

    Example:
        >>> import torch
        >>> from mmrevode.models import HamiltonianNet
        >>> model = HamiltonianNet(arch='74', out_indices=(0, 1, 2))
        >>> for out in model(torch.rand(2, 3, 32, 32)):
        ...     print(tuple(out.shape))
        (2, 32, 32, 32)
        (2, 64, 16, 16)
        (2, 112, 8, 8)
    """
    block_cls = HamiltonianBlock
    default_h = 0.1
    pad_groups = 2
    arch_settings = {
        '38': dict(blocks=[3, 3, 3], widths=[32, 64, 112]),
        '74': dict(blocks=[6, 6, 6], widths=[32, 64, 112]),
        '110': dict(blocks=[9, 9, 9], widths=[32, 64, 128]),
        '218': dict(blocks=[18, 18, 18], widths=[32, 64, 128]),
        '1202': dict(blocks=[100, 100, 100], widths=[32, 64, 128]),
        'det-38': dict(blocks=[3, 3, 3, 3], widths=[64, 128, 256, 512]),
        'det-74': dict(blocks=[6, 6, 6, 6], widths=[64, 128, 256, 512]),
    }

    def __init__(self, arch='74', **kwargs):
        super().__init__(arch, **kwargs)
