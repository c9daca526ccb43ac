"""The layout shared by all reversible backbones."""
import copy
from typing import (Callable, Dict, Iterator, Optional, Sequence, Tuple, Type,
                    Union)

import torch.nn.functional as F
from mmcv.cnn import build_activation_layer, build_norm_layer
from torch import Tensor, nn

from ..reversible import (Mode, ReversibleBlock, ReversibleSequence,
                          parse_modes)
from .defined_backbone import (DefinedBackbone, act_definition,
                               norm_definition)
from .utils import freeze, parse_out_indices

STEM_TYPES = ('cifar', 'imagenet')


class ChannelPadDownsample(nn.Module):
    """2x2 average pooling, then zero-padding of the channels.

    The transition between two units (paper Fig. 2). It is not invertible
    and runs under ordinary autograd, where it saves nothing for backward.

    Args:
        in_channels (int): Channels of the input.
        out_channels (int): Channels of the output (>= ``in_channels``).
        groups (int): Pad each of this many equal channel groups separately,
            e.g. 2 to keep the Hamiltonian halves apart. Defaults to 1.
    """

    def __init__(self, in_channels: int, out_channels: int, groups: int = 1):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.groups = groups

    def forward(self, x: Tensor) -> Tensor:
        x = F.avg_pool2d(x, 2)
        pad = (self.out_channels - self.in_channels) // self.groups
        if pad == 0:
            return x
        n, _, h, w = x.shape
        x = x.view(n, self.groups, self.in_channels // self.groups, h, w)
        return F.pad(x, (0, 0, 0, 0, 0, pad)).view(n, self.out_channels, h, w)

    def extra_repr(self) -> str:
        return (f'{self.in_channels}, {self.out_channels}, '
                f'groups={self.groups}')


class BaseReversibleNet(DefinedBackbone):
    """Stem, reversible units and the transitions between them.

    A subclass names its block type (``block_cls``), its presets
    (``arch_settings``: name -> ``dict(blocks=[...], widths=[...])``) and its
    default step size (``default_h``). The network is

        stem -> unit 0 -> transition -> unit 1 -> ... -> outputs

    where each unit is a :class:`ReversibleSequence` of blocks at one width
    and resolution, and each transition halves the resolution and
    zero-pads the channels to the next width.

    Args:
        arch (str | int | dict): A preset name (e.g. ``'74'`` or ``74``) or
            ``dict(blocks=[n1, n2, ...], widths=[c1, c2, ...])``: blocks per
            unit and the width of each unit.
        h (float, optional): Step size. Defaults to the class's
            ``default_h``.
        in_channels (int): Channels of the input image. Defaults to 3.
        out_indices (int | Sequence[int]): Units whose outputs are returned;
            negative values count from the end. Defaults to -1 (the last).
        frozen_stages (int): Freeze the stem (0) and also the first
            ``frozen_stages`` units (> 0): no gradients, eval mode. -1 freezes
            nothing. Defaults to -1.
        stem_type (str): ``'cifar'``: 3x3 convolution, norm, activation
            (stride 1). ``'imagenet'``: 7x7 convolution with stride 2, norm,
            activation, 3x3 max pooling with stride 2 (overall stride 4), for
            large images and detection. Defaults to ``'cifar'``.
        out_norm (bool): Apply norm and activation to each returned unit
            output, as in the paper's head (BN, ReLU, pooling, FC). The units
            themselves stay reversible. Defaults to True.
        norm_cfg (dict): Normalisation config, inside the blocks and in the
            stem. Defaults to ``dict(type='BN', requires_grad=True)``.
        act_cfg (dict): Activation config. Defaults to ``dict(type='ReLU')``.
        norm_eval (bool): Keep all batch norms in eval mode while training
            (running statistics frozen). Defaults to False.
        mode (str | Sequence[str]): How the units store activations for
            the backward: ``'reversible'`` (the memory-efficient backward,
            nothing stored inside a unit), ``'plain'`` (plain autograd) or
            ``'checkpoint'`` (``torch.utils.checkpoint`` around each block),
            or a list with one of them per unit, e.g.
            ``['reversible', 'plain', 'plain']``. Every mode has the same
            ``state_dict``, outputs and gradients; see :meth:`set_mode`.
            Defaults to ``'reversible'``.
        preserve_rng_state (bool): Replay the random generators' states
            when a unit's backward recomputes its blocks (``'reversible'``
            and ``'checkpoint'`` modes), so that blocks with dropout or drop
            path (e.g. through ``block_cfg``) get the gradients of the
            forward's random draws. Blocks that draw no random numbers cost
            nothing measurable either way (see :class:`ReversibleSequence`).
            Defaults to True.
        block_cfg (dict, optional): Extra keyword arguments of every block
            (e.g. ``dict(start='zero')`` for the leapfrog). Defaults to None.
        exact (bool): Exact reversibility: each unit holds its state pair
            in fixed point (float64 multiples of ``2^-32``) and every step
            adds its increment rounded to that grid, so the backward
            rebuilds every state bit for bit, in any precision and under
            autocast (see :class:`ReversibleSequence`). It changes the
            network's outputs (by less than float32's own round-off), not
            its ``state_dict``; every ``mode`` runs the same arithmetic.
            Defaults to False.
        init_cfg (dict | list[dict], optional): Initialisation config.
            Defaults to Kaiming for convolutions, 1 for norm weights.
        check_definition (bool): Refuse a checkpoint trained as another
            network (other ``h``, ``arch``, scheme options, ``act_cfg``,
            norm type, ``stem_type``, ``out_norm``, ``in_channels``) or
            recording none; False loads it into this network with a warning,
            e.g. to evaluate trained weights at another step size on
            purpose. See :class:`DefinedBackbone`. Defaults to True.

    The recorded definition (:meth:`definition`) holds ``type``, ``arch``
    (blocks and widths), ``h``, ``in_channels``, ``stem_type``, ``out_norm``,
    ``norm_cfg`` (type and ``eps``; every batch norm, synchronised or not,
    counts as ``'BN'``), ``act_cfg`` (without ``inplace``) and ``block_cfg``
    (without ``init_cfg``). Not recorded:
    ``mode`` and ``preserve_rng_state`` (they change how the backward is
    computed, not the network), ``out_indices`` (a detector
    returns more outputs of a backbone pre-trained for classification), and
    what training alone uses (``frozen_stages``, ``norm_eval``, ``init_cfg``).
    A ``Pretrained`` checkpoint may lack or have other ``out_norms`` (the
    norms of the outputs it returned).
    """
    #: checkpoints from before ``exact`` existed ran floating-point states
    unrecorded_defaults = {'exact': False}
    block_cls: Type[ReversibleBlock] = None
    arch_settings: Dict[str, dict] = {}
    default_h: float = 0.1
    #: Channel groups padded separately in transitions (2 for the halves).
    pad_groups: int = 1
    optional_pretrained_keys = ('out_norms.', )

    def __init__(self,
                 arch: Union[str, int, dict],
                 h: Optional[float] = None,
                 in_channels: int = 3,
                 out_indices: Union[int, Sequence[int]] = -1,
                 frozen_stages: int = -1,
                 stem_type: str = 'cifar',
                 out_norm: bool = True,
                 norm_cfg: dict = dict(type='BN', requires_grad=True),
                 act_cfg: dict = dict(type='ReLU'),
                 norm_eval: bool = False,
                 mode: Mode = 'reversible',
                 preserve_rng_state: bool = True,
                 block_cfg: Optional[dict] = None,
                 exact: bool = False,
                 init_cfg=[
                     dict(type='Kaiming', layer=['Conv2d']),
                     dict(type='Constant', val=1, layer=['_BatchNorm'])
                 ],
                 check_definition: bool = True):
        super().__init__(
            init_cfg=init_cfg, check_definition=check_definition)
        name = type(self).__name__
        self.arch = self._parse_arch(arch)
        self.blocks = list(self.arch['blocks'])
        self.widths = list(self.arch['widths'])
        self.h = self.default_h if h is None else h
        if isinstance(self.h, bool) or not isinstance(self.h, (int, float)) \
                or not self.h > 0:
            raise ValueError(f'{name}: h (the step size) must be a positive '
                             f'number, got {h!r}.')
        if isinstance(in_channels, bool) or not isinstance(in_channels, int) \
                or in_channels < 1:
            raise ValueError(f'{name}: in_channels must be a positive int, '
                             f'got {in_channels!r}.')
        if stem_type not in STEM_TYPES:
            raise ValueError(f'{name}: stem_type must be one of '
                             f'{STEM_TYPES}, got {stem_type!r}.')
        num_units = len(self.blocks)
        self.num_units = num_units
        self.out_indices = parse_out_indices(out_indices, num_units, 'unit')
        if not isinstance(frozen_stages, int) or not \
                -1 <= frozen_stages <= num_units:
            raise ValueError(f'{name}: frozen_stages must be an int in '
                             f'[-1, {num_units}], got {frozen_stages!r}.')
        self.in_channels = in_channels
        self.frozen_stages = frozen_stages
        self.stem_type = stem_type
        self.out_norm = out_norm
        self.norm_eval = norm_eval
        unit_modes = parse_modes(mode, num_units, name)
        self.stem_stride = 4 if stem_type == 'imagenet' else 1

        self.norm_cfg = norm_cfg
        self.act_cfg = act_cfg
        self.block_cfg = dict(block_cfg or {})
        if not isinstance(preserve_rng_state, bool):
            raise TypeError(f'{name}: preserve_rng_state must be True or '
                            f'False, got {preserve_rng_state!r}.')
        #: Replay random draws in the recompute; not part of the definition.
        self.preserve_rng_state = preserve_rng_state
        if not isinstance(exact, bool):
            raise TypeError(f'{name}: exact must be True or False, got '
                            f'{exact!r}.')
        #: Exact reversibility (fixed-point pairs); part of the network's
        #: definition, since it changes the outputs.
        self.exact = exact

        self.stem = self._make_stem(in_channels, self.widths[0], stem_type,
                                    norm_cfg, act_cfg)
        self.units = nn.ModuleList()
        self.transitions = nn.ModuleList()
        for i, (num_blocks, width) in enumerate(zip(self.blocks,
                                                    self.widths)):
            if i > 0:
                self.transitions.append(
                    ChannelPadDownsample(self.widths[i - 1], width,
                                         self.pad_groups))
            self.units.append(
                self.make_unit(num_blocks, width, unit_modes[i]))
        self.out_norms = nn.ModuleDict()
        if out_norm:
            for i in self.out_indices:
                self.out_norms[str(i)] = nn.Sequential(
                    build_norm_layer(norm_cfg, self.widths[i])[1],
                    build_activation_layer(act_cfg))
        freeze(self, self._frozen_modules())

    def definition(self) -> dict:
        """The network besides its weights: ``type``, ``arch``, ``h``,
        ``exact``, ``in_channels``, ``stem_type``, ``out_norm``,
        ``norm_cfg``, ``act_cfg`` and ``block_cfg`` (see
        :class:`DefinedBackbone`)."""
        return dict(
            super().definition(),
            arch=dict(self.arch, blocks=self.blocks, widths=self.widths),
            h=float(self.h),
            # fixed-point states round every step: another network
            exact=bool(self.exact),
            in_channels=self.in_channels,
            stem_type=self.stem_type,
            out_norm=bool(self.out_norm),
            norm_cfg=norm_definition(self.norm_cfg),
            act_cfg=act_definition(self.act_cfg),
            # a block's init_cfg initialises, it does not define
            block_cfg={
                k: v
                for k, v in self.block_cfg.items() if k != 'init_cfg'
            })

    # -- construction helpers -------------------------------------------------
    def make_unit(self,
                  num_blocks: int,
                  channels: int,
                  mode: str = 'reversible') -> ReversibleSequence:
        """Build one unit: ``num_blocks`` blocks (:meth:`make_block`) run by
        a :class:`ReversibleSequence`.

        Args:
            num_blocks (int): Blocks in the unit.
            channels (int): Width of the unit.
            mode (str): Execution mode of the unit.
                Defaults to ``'reversible'``.

        Returns:
            ReversibleSequence: The unit.
        """
        blocks = [
            self.make_block(channels, index, h=self.h,
                            norm_cfg=self.norm_cfg, act_cfg=self.act_cfg,
                            **self.block_cfg) for index in range(num_blocks)
        ]
        return ReversibleSequence(
            blocks,
            mode=mode,
            preserve_rng_state=self.preserve_rng_state,
            exact=self.exact)

    @property
    def mode(self) -> Mode:
        """The mode of every unit (a str), or a list of one per unit."""
        modes = [unit.mode for unit in self.units]
        if all(isinstance(m, str) for m in modes) and len(set(modes)) == 1:
            return modes[0]
        return modes

    def set_mode(self, mode: Mode) -> 'BaseReversibleNet':
        """Switch the execution mode of the units, keeping the weights.

        Args:
            mode (str | Sequence[str]): As the ``mode`` argument: one mode
                for all units or a list with one per unit.

        Returns:
            BaseReversibleNet: The backbone itself.
        """
        modes = parse_modes(mode, self.num_units, type(self).__name__)
        for unit, unit_mode in zip(self.units, modes):
            unit.mode = unit_mode
        return self

    def make_block(self, channels: int, block_index: int,
                   **kwargs) -> ReversibleBlock:
        """Build the block at position ``block_index`` of a unit.

        The blocks of most schemes do not depend on their position, and
        this ignores ``block_index``; a scheme whose first block differs
        (e.g. the midpoint rule's forward-Euler start) overrides it.

        Args:
            channels (int): Width of the unit.
            block_index (int): Position of the block in its unit.
            **kwargs: Arguments of :attr:`block_cls` (``h``, ``norm_cfg``,
                ``act_cfg`` and ``block_cfg``).
        """
        return self.block_cls(channels, **kwargs)

    # -- the paper's depth count ----------------------------------------------
    @classmethod
    def layers_per_block(cls, arch: dict) -> int:
        """Layers of one block of the parsed ``arch`` in the paper's depth
        count: :attr:`ReversibleBlock.num_layers` of :attr:`block_cls`."""
        return cls.block_cls.num_layers

    @classmethod
    def arch_depth(cls, arch: Union[str, int, dict]) -> int:
        """Depth of a network of ``arch`` (a preset or a dict, as the
        ``arch`` argument) as the paper counts it: layers per block
        (:meth:`layers_per_block`) times the blocks, plus the stem and the
        classifier."""
        arch = cls._parse_arch(arch)
        return cls.layers_per_block(arch) * sum(arch['blocks']) + 2

    @property
    def depth(self) -> int:
        """This network's depth as the paper counts it (see
        :meth:`arch_depth`), from the blocks it has."""
        return 2 + sum(block.num_layers for unit in self.units
                       for block in unit.blocks)

    @classmethod
    def _parse_arch(cls, arch) -> dict:
        name = cls.__name__
        if isinstance(arch, (str, int)) and not isinstance(arch, bool):
            key = str(arch).lower()
            if key not in cls.arch_settings:
                raise ValueError(
                    f'{name}: unknown arch {arch!r}; valid presets are '
                    f'{sorted(cls.arch_settings, key=_natural)}, or pass '
                    'dict(blocks=[...], widths=[...]).')
            return copy.deepcopy(cls.arch_settings[key])
        if not isinstance(arch, dict):
            raise TypeError(f'{name}: arch must be a preset name (str or int) '
                            f'or a dict, got {type(arch).__name__}.')
        missing = {'blocks', 'widths'} - set(arch)
        if missing:
            raise ValueError(f'{name}: arch dict needs the keys "blocks" and '
                             f'"widths"; missing {sorted(missing)}.')
        blocks, widths = list(arch['blocks']), list(arch['widths'])
        if not blocks or len(blocks) != len(widths):
            raise ValueError(f'{name}: arch needs as many widths as units '
                             f'(at least one); got blocks={blocks}, '
                             f'widths={widths}.')
        for key, values in (('blocks', blocks), ('widths', widths)):
            if not all(isinstance(v, int) and not isinstance(v, bool)
                       and v > 0 for v in values):
                raise ValueError(f'{name}: arch {key} must be positive ints, '
                                 f'got {values}.')
        if any(w2 <= w1 for w1, w2 in zip(widths, widths[1:])):
            raise ValueError(f'{name}: widths must be increasing from unit to '
                             f'unit (channels are zero-padded between '
                             f'units), got {widths}.')
        if cls.pad_groups > 1 and any(w % cls.pad_groups for w in widths):
            raise ValueError(f'{name}: every width must be divisible by '
                             f'{cls.pad_groups} (the state is split into '
                             f'channel halves), got {widths}.')
        return dict(arch, blocks=blocks, widths=widths)

    @staticmethod
    def _make_stem(in_channels, out_channels, stem_type, norm_cfg,
                   act_cfg) -> nn.Sequential:
        if stem_type == 'cifar':
            conv = nn.Conv2d(
                in_channels, out_channels, 3, padding=1, bias=False)
            layers = [conv]
        else:
            conv = nn.Conv2d(
                in_channels, out_channels, 7, stride=2, padding=3, bias=False)
            layers = [conv]
        layers += [
            build_norm_layer(norm_cfg, out_channels)[1],
            build_activation_layer(act_cfg)
        ]
        if stem_type == 'imagenet':
            layers.append(nn.MaxPool2d(3, stride=2, padding=1))
        return nn.Sequential(*layers)

    # -- training-mode behaviour ----------------------------------------------
    def _frozen_modules(self) -> list:
        if self.frozen_stages < 0:
            return []
        return [self.stem, *self.units[:self.frozen_stages]]

    def train(self, mode: bool = True):
        super().train(mode)
        return freeze(self, self._frozen_modules(), mode and self.norm_eval)

    # -- forward ------------------------------------------------------------
    def _check_input(self, x: Tensor):
        name = type(self).__name__
        if x.dim() != 4:
            raise ValueError(f'{name} expects a 4-D input (N, C, H, W), got '
                             f'shape {tuple(x.shape)}.')
        if x.shape[1] != self.in_channels:
            raise ValueError(f'{name} was built with in_channels='
                             f'{self.in_channels}, but the input has '
                             f'{x.shape[1]} channels (shape '
                             f'{tuple(x.shape)}).')
        min_size = self.stem_stride * 2**(self.num_units - 1)
        if min(x.shape[2:]) < min_size:
            raise ValueError(
                f'{name}: input {tuple(x.shape[2:])} is smaller than the '
                f'total downsampling ({min_size}x{min_size}: stem stride '
                f'{self.stem_stride}, {self.num_units - 1} transitions).')

    def iter_units(
        self,
        x: Tensor,
        run_unit: Optional[Callable[[nn.Module, Tensor], Tensor]] = None,
        num_units: Optional[int] = None
    ) -> Iterator[Tuple[int, ReversibleSequence, Tensor, Tensor]]:
        """Run the stem, then the units and the transitions between them.

        The one walk through the backbone: :meth:`forward` and the
        measurements of :mod:`mmrevode.analysis` use it.

        Args:
            x (Tensor): The input images.
            run_unit (callable, optional): ``run_unit(unit, unit_input)``
                returns the unit's output, e.g. by running its blocks one
                by one. Defaults to calling the unit.
            num_units (int, optional): Stop after this many units.
                Defaults to all.

        Yields:
            tuple: ``(index, unit, unit_input, unit_output)`` for each unit
            in turn.
        """
        run_unit = run_unit or (lambda unit, inputs: unit(inputs))
        x = self.stem(x)
        for i, unit in enumerate(self.units[:num_units]):
            if i > 0:
                x = self.transitions[i - 1](x)
            out = run_unit(unit, x)
            yield i, unit, x, out
            x = out

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        self._check_input(x)
        outs = []
        for i, _, _, out in self.iter_units(x):
            if i in self.out_indices:
                norm = self.out_norms[str(i)] if str(i) in self.out_norms \
                    else None
                outs.append(norm(out) if norm is not None else out)
        return tuple(outs)


def _natural(key: str):
    return (0, int(key)) if key.isdigit() else (1, key)
