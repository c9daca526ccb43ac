"""The step functions ``F`` that the schemes are built from."""
from typing import Optional

import torch.nn.functional as F
from mmcv.cnn import build_activation_layer, build_norm_layer
from mmengine.model import BaseModule
from torch import Tensor, nn


class ConvNormAct(BaseModule):
    """The convolution ``K`` (same padding; a bias only without a norm), the
    norm ``N`` (an identity for ``norm_cfg=None``) and the activation that
    the step functions below are made of; each applies them its own way.

    Args:
        in_channels (int): Input channels of ``K``.
        out_channels (int): Output channels of ``K``.
        kernel_size (int): Kernel size of ``K`` (odd).
        norm_cfg (dict, optional): Config of ``N``.
        act_cfg (dict): Config of the activation.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 norm_cfg: Optional[dict], act_cfg: dict,
                 init_cfg: Optional[dict]):
        super().__init__(init_cfg=init_cfg)
        self.conv = nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            padding=kernel_size // 2,
            bias=norm_cfg is None)
        self.norm = build_norm_layer(norm_cfg, out_channels)[1] \
            if norm_cfg is not None else nn.Identity()
        self.act = build_activation_layer(act_cfg)


class SymmetricConvLayer(ConvNormAct):
    """``F(x) = K^T act(N(K x + b))`` with one convolution ``K`` used twice.

    ``K^T`` is the true adjoint of ``K``: ``conv_transpose2d`` with the same
    weight tensor. For a linear activation the operator is symmetric negative
    semi-definite up to sign, which is what makes the Hamiltonian and
    Leapfrog right-hand sides stable.

    Args:
        channels (int): Channels of ``x`` (and of ``F(x)``).
        mid_channels (int, optional): Output channels of ``K``.
            Defaults to ``channels``.
        kernel_size (int): Kernel size of ``K`` (odd). Defaults to 3.
        norm_cfg (dict, optional): Config of the normalisation ``N``; None
            for none, in which case ``K`` gets the bias ``b``.
            Defaults to ``dict(type='BN')``.
        act_cfg (dict): Config of the activation. Defaults to
            ``dict(type='ReLU')``.
        init_cfg (dict, optional): Initialisation config. Defaults to None.
    """

    def __init__(self,
                 channels: int,
                 mid_channels: Optional[int] = None,
                 kernel_size: int = 3,
                 norm_cfg: Optional[dict] = dict(type='BN'),
                 act_cfg: dict = dict(type='ReLU'),
                 init_cfg: Optional[dict] = None):
        super().__init__(channels, mid_channels or channels, kernel_size,
                         norm_cfg, act_cfg, init_cfg)

    def forward(self, x: Tensor) -> Tensor:
        out = self.act(self.norm(self.conv(x)))
        return F.conv_transpose2d(
            out, self.conv.weight, padding=self.conv.padding)


class AntisymmetricConvLayer(ConvNormAct):
    """``F(x) = act(N((K - K^T) x + b))`` with an anti-symmetric operator.

    ``K - K^T`` is anti-symmetric, so its eigenvalues are imaginary: the
    right-hand side neither amplifies nor damps the state. Since
    ``K^T x = conv2d(x, flip(K)^T)`` for a stride-1, same-padded kernel, the
    operator is applied as a single convolution with the weight
    ``W - W.transpose(0, 1).flip(2, 3)``.

    Args:
        channels (int): Channels of ``x`` and of ``F(x)``.
        kernel_size (int): Kernel size of ``K`` (odd). Defaults to 3.
        norm_cfg (dict, optional): Config of ``N``; None for none, in which
            case the bias ``b`` is used. Defaults to ``dict(type='BN')``.
        act_cfg (dict): Config of the activation. Defaults to
            ``dict(type='ReLU')``.
        init_cfg (dict, optional): Initialisation config. Defaults to None.
    """

    def __init__(self,
                 channels: int,
                 kernel_size: int = 3,
                 norm_cfg: Optional[dict] = dict(type='BN'),
                 act_cfg: dict = dict(type='ReLU'),
                 init_cfg: Optional[dict] = None):
        super().__init__(channels, channels, kernel_size, norm_cfg, act_cfg,
                         init_cfg)

    def antisymmetric_weight(self) -> Tensor:
        """The kernel of ``K - K^T``."""
        weight = self.conv.weight
        return weight - weight.transpose(0, 1).flip(2, 3)

    def forward(self, x: Tensor) -> Tensor:
        out = F.conv2d(x, self.antisymmetric_weight(), self.conv.bias,
                       padding=self.conv.padding)
        return self.act(self.norm(out))
