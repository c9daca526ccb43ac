"""The CIFAR ResNets of He et al. (2016): ResNet-20/32/44/56/110."""
from collections.abc import Mapping
from typing import Callable, Iterator, Optional, Sequence, Tuple, Union

import torch.nn.functional as F
from mmcv.cnn import build_activation_layer, build_norm_layer
from mmengine.model import constant_init
from mmpretrain.models.backbones import ResNet_CIFAR
from mmpretrain.models.backbones.resnet import BasicBlock
from mmpretrain.registry import MODELS
from torch import Tensor, nn

from ..reversible import Mode, parse_modes
from .defined_backbone import (DefinedBackbone, act_definition,
                               norm_definition)
from .utils import parse_out_indices

SHORTCUT_TYPES = ('A', 'B')
#: The most stages MMPretrain's ResNet builds.
MAX_STAGES = 4


class PadShortcut(nn.Module):
    """Option-A shortcut: subsample, then zero-pad the new channels.

    The parameter-free identity shortcut He et al. use on CIFAR when a stage
    doubles the channels and halves the resolution: ``x[:, :, ::s, ::s]``
    followed by zero channels (split evenly before and after the input's,
    as in the common reference implementations).

    Args:
        in_channels (int): Channels of the input.
        out_channels (int): Channels of the output (>= ``in_channels``).
        stride (int): Spatial subsampling. Defaults to 2.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 2):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        if self.stride > 1:
            x = x[:, :, ::self.stride, ::self.stride]
        pad = self.out_channels - self.in_channels
        return F.pad(x, (0, 0, 0, 0, pad // 2, pad - pad // 2))

    def extra_repr(self) -> str:
        return (f'{self.in_channels}, {self.out_channels}, '
                f'stride={self.stride}')


class CifarDepths(Mapping):
    """The ``arch_settings`` of :class:`CifarResNet`, as MMPretrain's
    ``ResNet`` reads them: ``depth -> (BasicBlock, blocks per stage)`` for
    every ``depth = 6n + 2`` (``n >= 1`` blocks in each stage). Iterating
    gives the depths of He et al.'s table."""
    presets = (20, 32, 44, 56, 110)

    @staticmethod
    def is_depth(depth) -> bool:
        """Whether ``depth`` is ``6n + 2`` with ``n >= 1``."""
        return isinstance(depth, int) and not isinstance(depth, bool) and \
            depth >= 8 and (depth - 2) % 6 == 0

    def __getitem__(self, depth) -> Tuple[type, Tuple[int, ...]]:
        if not self.is_depth(depth):
            raise KeyError(depth)
        return BasicBlock, ((depth - 2) // 6, ) * MAX_STAGES

    def __iter__(self) -> Iterator[int]:
        return iter(self.presets)

    def __len__(self) -> int:
        return len(self.presets)


@MODELS.register_module()
class CifarResNet(ResNet_CIFAR, DefinedBackbone):
    """ResNet for CIFAR as in He et al., "Deep Residual Learning for Image
    Recognition" (CVPR 2016), section 4.2.

    A 3x3 convolution with 16 channels, then three stages of ``n = (depth -
    2) / 6`` basic blocks (two 3x3 convolutions, post-activation:
    :class:`mmpretrain.models.backbones.resnet.BasicBlock`) at 16, 32 and 64
    channels, the first block of stages 2 and 3 with stride 2. The classifier
    head (global average pooling, fully connected) is not part of the
    backbone. MMPretrain's ``ResNet_CIFAR``, which this builds on (its stem,
    stages, ``frozen_stages``, ``norm_eval`` and forward), keeps the
    ImageNet layout (depths 18 to 152, 64-512 channels); this is the thin
    original: the depths ``6n + 2`` (:class:`CifarDepths`), its widths, and
    its shortcuts (:meth:`make_res_layer`).

    The shortcut where the shape changes is option A by default, as in He et
    al.'s CIFAR experiments: subsampling plus zero-padded channels, so the
    network has no parameters outside the blocks' convolutions and norms
    (ResNet-32: 0.46M, ResNet-110: 1.73M with a 10-class head). Option B is a
    strided 1x1 convolution and a norm.

    Args:
        depth (int): 20, 32, 44, 56 or 110 (any ``6n + 2`` works).
        in_channels (int): Channels of the input image. Defaults to 3.
        base_channels (int): Channels of the first stage; stage ``i`` has
            ``base_channels * 2**i``. Defaults to 16.
        num_stages (int): Number of stages, 1 to 4. Defaults to 3.
        shortcut (str): ``'A'`` (zero padding) or ``'B'`` (projection).
            Defaults to ``'A'``.
        out_indices (int | Sequence[int]): Stages whose outputs are
            returned; negative values count from the end. Defaults to -1.
        frozen_stages (int): Freeze the stem (0) and also the first
            ``frozen_stages`` stages (> 0): no gradients, eval mode. -1
            freezes nothing. Defaults to -1.
        norm_cfg (dict): Normalisation config.
            Defaults to ``dict(type='BN', requires_grad=True)``.
        act_cfg (dict): Activation config.
            Defaults to ``dict(type='ReLU', inplace=True)``.
        norm_eval (bool): Keep all batch norms in eval mode while training.
            Defaults to False.
        mode (str | Sequence[str]): ``'plain'`` (autograd) or
            ``'checkpoint'`` (``torch.utils.checkpoint`` around each block),
            or a list with one of them per stage. Defaults to ``'plain'``.
        zero_init_residual (bool): Initialise the last norm of every block
            to zero, so blocks start as identities. He et al. do not.
            Defaults to False.
        init_cfg (dict | list[dict], optional): Initialisation config.
            Defaults to Kaiming for convolutions, 1 for norm weights.
        check_definition (bool): Refuse a checkpoint trained as another
            network (see :meth:`definition`) or recording none; False loads
            it into this network with a warning. See
            :class:`~mmrevode.models.backbones.DefinedBackbone`.
            Defaults to True.

    The checkpoints record ``type``, ``depth``, ``in_channels``,
    ``base_channels``, ``num_stages``, ``shortcut``, ``norm_cfg`` (type and
    ``eps``) and ``act_cfg`` (without ``inplace``); loading compares them
    with the network built. The weights have the names of MMPretrain's
    ResNets (``conv1``, ``bn1``, ``layer1.0.conv1``, ...).

    Example:
        >>> import torch
        >>> from mmrevode.models import CifarResNet
        >>> model = CifarResNet(depth=32, out_indices=(0, 1, 2))
        >>> for out in model(torch.rand(2, 3, 32, 32)):
        ...     print(tuple(out.shape))
        (2, 16, 32, 32)
        (2, 32, 16, 16)
        (2, 64, 8, 8)
    """
    arch_settings = CifarDepths()

    def __init__(self,
                 depth: int,
                 in_channels: int = 3,
                 base_channels: int = 16,
                 num_stages: int = 3,
                 shortcut: str = 'A',
                 out_indices: Union[int, Sequence[int]] = -1,
                 frozen_stages: int = -1,
                 norm_cfg: dict = dict(type='BN', requires_grad=True),
                 act_cfg: dict = dict(type='ReLU', inplace=True),
                 norm_eval: bool = False,
                 mode: Mode = 'plain',
                 zero_init_residual: bool = False,
                 init_cfg: Optional[Union[dict, list]] = [
                     dict(type='Kaiming', layer=['Conv2d']),
                     dict(type='Constant', val=1, layer=['_BatchNorm'])
                 ],
                 check_definition: bool = True):
        self.arch_depth(depth)
        if shortcut not in SHORTCUT_TYPES:
            raise ValueError(f'CifarResNet: shortcut must be one of '
                             f'{SHORTCUT_TYPES}, got {shortcut!r}.')
        if isinstance(num_stages, bool) or not isinstance(num_stages, int) \
                or not 1 <= num_stages <= MAX_STAGES:
            raise ValueError('CifarResNet: num_stages must be an int in '
                             f'[1, {MAX_STAGES}], got {num_stages!r}.')
        out_indices = parse_out_indices(out_indices, num_stages)
        stage_modes = parse_modes(
            mode,
            num_stages,
            'CifarResNet',
            part='stage',
            allowed=('plain', 'checkpoint'))
        if not isinstance(frozen_stages, int) or not \
                -1 <= frozen_stages <= num_stages:
            raise ValueError('CifarResNet: frozen_stages must be an int in '
                             f'[-1, {num_stages}], got {frozen_stages!r}.')
        # Read by the stem and make_res_layer, which ResNet's constructor
        # calls.
        self.shortcut = shortcut
        self.act_cfg = act_cfg
        self.stage_modes = stage_modes
        super().__init__(
            depth,
            in_channels=in_channels,
            stem_channels=base_channels,
            base_channels=base_channels,
            num_stages=num_stages,
            strides=(1, ) + (2, ) * (num_stages - 1),
            dilations=(1, ) * num_stages,
            out_indices=out_indices,
            frozen_stages=frozen_stages,
            norm_cfg=norm_cfg,
            norm_eval=norm_eval,
            with_cp=all(m == 'checkpoint' for m in stage_modes),
            zero_init_residual=zero_init_residual,
            init_cfg=init_cfg)
        self.check_definition = check_definition
        self.in_channels = in_channels
        self.num_blocks = self.stage_blocks[0]
        self.widths = [base_channels * 2**i for i in range(num_stages)]

    # -- the paper's depth count ----------------------------------------------
    @classmethod
    def layers_per_block(cls, arch: Optional[int] = None) -> int:
        """Layers of a block in the paper's depth count: the two 3x3
        convolutions of a ``BasicBlock`` (the same for every depth)."""
        return 2

    @classmethod
    def arch_depth(cls, depth: int) -> int:
        """The depth of ``CifarResNet(depth)``: ``depth`` itself, checked to
        be ``6n + 2`` (3 stages of ``n`` blocks of :meth:`layers_per_block`
        layers, the stem and the classifier)."""
        if not CifarDepths.is_depth(depth):
            raise ValueError('CifarResNet: depth must be 6n + 2 with n >= 1 '
                             f'(e.g. {sorted(cls.arch_settings)}), got '
                             f'{depth!r}.')
        return depth

    # -- construction, as ResNet's constructor calls it ---------------------
    def _make_stem_layer(self, in_channels: int, base_channels: int):
        """``ResNet_CIFAR``'s stem (3x3 convolution, norm, no pooling) with
        the activation of ``act_cfg``."""
        super()._make_stem_layer(in_channels, base_channels)
        self.relu = build_activation_layer(self.act_cfg)

    def make_res_layer(self, num_blocks: int, in_channels: int,
                       out_channels: int, stride: int, norm_cfg: dict,
                       **kwargs) -> nn.Sequential:
        """One stage: ``num_blocks`` ``BasicBlock`` s, the first with
        ``stride`` and, where the shape changes, the shortcut of
        ``shortcut``; checkpointed if the stage's mode is
        ``'checkpoint'``. The other arguments of MMPretrain's ``ResLayer``
        (``kwargs``) keep their defaults."""
        # ResNet names each stage after building it: this is stage
        # len(self.res_layers).
        with_cp = self.stage_modes[len(self.res_layers)] == 'checkpoint'
        blocks = []
        for index in range(num_blocks):
            block_stride = stride if index == 0 else 1
            downsample = None
            if block_stride != 1 or in_channels != out_channels:
                downsample = self._make_shortcut(in_channels, out_channels,
                                                 block_stride, norm_cfg)
            blocks.append(
                BasicBlock(
                    in_channels,
                    out_channels,
                    stride=block_stride,
                    downsample=downsample,
                    with_cp=with_cp,
                    norm_cfg=norm_cfg,
                    act_cfg=self.act_cfg))
            in_channels = out_channels
        return nn.Sequential(*blocks)

    def _make_shortcut(self, in_channels, out_channels, stride,
                       norm_cfg) -> nn.Module:
        if self.shortcut == 'A':
            return PadShortcut(in_channels, out_channels, stride)
        return nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, stride=stride,
                      bias=False),
            build_norm_layer(norm_cfg, out_channels)[1])

    def definition(self) -> dict:
        """The network besides its weights: ``type``, ``depth``,
        ``in_channels``, ``base_channels``, ``num_stages``, ``shortcut``,
        ``norm_cfg`` and ``act_cfg``."""
        return dict(
            super().definition(),
            depth=self.depth,
            in_channels=self.in_channels,
            base_channels=self.base_channels,
            num_stages=self.num_stages,
            shortcut=self.shortcut,
            norm_cfg=norm_definition(self.norm_cfg),
            act_cfg=act_definition(self.act_cfg))

    # -- initialisation and training mode ------------------------------------
    def init_weights(self):
        """:meth:`DefinedBackbone.init_weights`: ``init_cfg``, then
        ``zero_init_residual`` (:meth:`init_own_weights`), then
        ``Pretrained`` weights, which ``ResNet``'s own would zero again."""
        DefinedBackbone.init_weights(self)

    def init_own_weights(self):
        """``zero_init_residual`` (before ``Pretrained`` weights)."""
        if self.zero_init_residual:
            for m in self.modules():
                if isinstance(m, BasicBlock):
                    constant_init(m.norm2, 0)

    def train(self, mode: bool = True):
        """``ResNet``'s (``frozen_stages``, ``norm_eval``), returning the
        module as ``nn.Module.train`` does."""
        super().train(mode)
        return self

    # -- forward -------------------------------------------------------------
    def iter_units(
        self,
        x: Tensor,
        run_unit: Optional[Callable[[nn.Module, Tensor], Tensor]] = None,
        num_units: Optional[int] = None
    ) -> Iterator[Tuple[int, nn.Sequential, Tensor, Tensor]]:
        """Run the stem, then the stages one by one.

        Args:
            x (Tensor): The input images.
            run_unit (callable, optional): ``run_unit(stage, stage_input)``
                returns the stage's output. Defaults to calling the stage.
            num_units (int, optional): Stop after this many stages.
                Defaults to all.

        Yields:
            tuple: ``(index, stage, stage_input, stage_output)`` for each
            stage in turn.
        """
        run_unit = run_unit or (lambda stage, inputs: stage(inputs))
        x = self.relu(self.norm1(self.conv1(x)))
        for i, layer_name in enumerate(self.res_layers[:num_units]):
            out = run_unit(getattr(self, layer_name), x)
            yield i, getattr(self, layer_name), x, out
            x = out
