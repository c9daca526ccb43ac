"""Forward and backward stability of a backbone along its depth.

For each model, freshly initialised or loaded from a checkpoint, this tool
measures

1. **forward propagation**: the norm of the state after every block of
   every unit, relative to the unit's input;
2. **backward propagation**: the norm of the gradient of a fixed random
   projection of the last unit's output with respect to the state after
   every block, relative to the gradient at the unit's output;
3. **the spectrum of one block's right-hand side**: the eigenvalues of the
   Jacobian of the continuous-time system the block discretises, at the
   state the block sees for a small random input (computed with
   ``torch.func.jacrev`` in float64, norms in eval mode).

and writes a PNG (three panels, all models overlaid) and a JSON file with
every number. The right-hand sides are

========================  =========================================  =====
block                     right-hand side                            state
========================  =========================================  =====
``HamiltonianBlock``      ``(Y, Z) -> (F1(Z), -F2(Y))``              pair
``RevNetBlock``           ``(x1, x2) -> (F(x2), G(x1))``             pair
``LeapfrogBlock``         ``(Y, V) -> (V, -F(Y))`` (``Y'' = -F(Y)``)  pair
``MidpointBlock``         ``Y -> F(Y)``                              one
ResNet ``BasicBlock``     ``x -> N(conv(act(N(conv(x)))))``          one
========================  =========================================  =====

The Hamiltonian, Leapfrog and Midpoint Jacobians have (up to round-off)
purely imaginary eigenvalues: their flows neither grow nor decay. RevNet's
and ResNet's have eigenvalues with real parts of both signs.

Models are given as config files (the config's ``model.backbone`` is
built) or as ``TYPE:ARCH`` (``HamiltonianNet:74``, ``RevNet:164``,
``CifarResNet:56``; the arch may also be a dict literal,
``"RevNet:{'blocks': [2, 2], 'widths': [8, 16]}"``).

Example::

    python tools/analysis_tools/stability.py HamiltonianNet:110 \\
        LeapfrogNet:92 RevNet:110 CifarResNet:110 --out-dir work_dirs/stab

Checkpoints are read with ``torch.load(weights_only=False)``, i.e. they are
pickles: load only files from sources you trust.
"""
import argparse
import ast
import copy
import inspect
import json
import os
import os.path as osp
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn

DEFAULT_OUT_DIR = osp.join('work_dirs', 'stability')


# -- building the models -------------------------------------------------------
def _registry():
    import mmrevode  # noqa: F401  (registers the backbones)
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    return MODELS


def parse_spec(spec: str, backbone_options: Optional[dict] = None
               ) -> Tuple[str, dict]:
    """Turn ``'TYPE[:ARCH]'`` into ``(name, backbone config)``.

    The arch goes to the backbone's ``arch`` argument, or to ``depth`` for
    backbones that take a depth (``CifarResNet``, MMPretrain's ``ResNet``).
    """
    models = _registry()
    type_name, _, arch = spec.partition(':')
    cls = models.get(type_name)
    if cls is None:
        raise ValueError(f'{type_name!r} is neither a config file nor a '
                         'backbone registered in MMPretrain.')
    cfg = dict(type=type_name)
    name = type_name
    if arch:
        params = inspect.signature(cls.__init__).parameters
        value = ast.literal_eval(arch) if arch[0] in '{[(' else arch
        if 'arch' in params:
            cfg['arch'] = value
        elif 'depth' in params:
            cfg['depth'] = int(value)
        else:
            raise ValueError(f'{type_name} takes neither arch nor depth.')
        name = f'{type_name}-{arch}' if isinstance(value, (str, int)) \
            else f'{type_name}-custom'
    cfg.update(backbone_options or {})
    return name, cfg


def load_backbone_checkpoint(backbone: nn.Module, path: str):
    """Load the backbone's weights from an MMPretrain (or bare) checkpoint.

    ``backbone.``-prefixed keys of a classifier checkpoint are matched to the
    backbone; other keys (head, data preprocessor) are ignored. The file is
    unpickled (``weights_only=False``): trusted sources only.
    """
    checkpoint = torch.load(path, map_location='cpu', weights_only=False)
    state = checkpoint.get('state_dict', checkpoint) \
        if isinstance(checkpoint, dict) else checkpoint
    if any(k.startswith('backbone.') for k in state):
        state = {
            k[len('backbone.'):]: v
            for k, v in state.items() if k.startswith('backbone.')
        }
    if not set(state) & set(backbone.state_dict()):
        raise RuntimeError(f'{path}: no key of the checkpoint matches the '
                           f'backbone {type(backbone).__name__}.')
    missing, _ = backbone.load_state_dict(state, strict=False)
    if missing:
        raise RuntimeError(f'{path}: the checkpoint lacks {len(missing)} '
                           f'backbone keys, e.g. {missing[:3]}.')


def _quiet_init_weights(module: nn.Module):
    """``init_weights`` without MMEngine's line per parameter."""
    import logging

    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        module.init_weights()
    finally:
        logger.setLevel(level)


def build_backbone(model: str,
                   checkpoint: Optional[str] = None,
                   cfg_options: Optional[dict] = None,
                   backbone_options: Optional[dict] = None
                   ) -> Tuple[str, nn.Module]:
    """Build ``(name, backbone)`` from a config file or a ``TYPE:ARCH``."""
    models = _registry()
    if model.endswith('.py') or osp.isfile(model):
        from mmengine.config import Config
        cfg = Config.fromfile(model)
        if cfg_options:
            cfg.merge_from_dict(cfg_options)
        backbone_cfg = copy.deepcopy(cfg.model.backbone)
        if backbone_options:
            backbone_cfg.update(backbone_options)
        name = osp.splitext(osp.basename(model))[0]
    else:
        name, backbone_cfg = parse_spec(model, backbone_options)
    backbone = models.build(backbone_cfg)
    _quiet_init_weights(backbone)
    if checkpoint:
        load_backbone_checkpoint(backbone, checkpoint)
    return name, backbone


# -- walking through the depth ---------------------------------------------------
def _reversible_units(backbone) -> bool:
    from mmrevode.models.backbones import BaseReversibleNet
    return isinstance(backbone, BaseReversibleNet)


def _resnet_stem(backbone, x: Tensor) -> Tensor:
    if hasattr(backbone, 'forward_stem'):
        return backbone.forward_stem(x)
    from mmpretrain.models.backbones import ResNet_CIFAR
    if getattr(backbone, 'deep_stem', False):
        x = backbone.stem(x)
    else:
        x = backbone.relu(backbone.norm1(backbone.conv1(x)))
    if not isinstance(backbone, ResNet_CIFAR):
        x = backbone.maxpool(x)
    return x


def _boundary(*tensors: Tensor, track: bool) -> Tuple[Tensor, ...]:
    """Fresh copies of the state, whose gradients are the adjoint state."""
    out = tuple(t.clone() for t in tensors)
    if track:
        for t in out:
            t.retain_grad()
    return out


def walk(backbone: nn.Module,
         x: Tensor,
         track: bool = True,
         num_units: Optional[int] = None) -> List[List[Tuple[Tensor, ...]]]:
    """Run the backbone block by block under plain autograd.

    Returns, for every unit (stage), the states at its boundaries: the
    unit's input, then the state after each block. A state is the pair
    ``(a, b)`` of a reversible unit or the single tensor of a ResNet stage.
    With ``track``, each state is a fresh tensor whose ``.grad`` is kept.
    With ``num_units``, only the first units are run.
    """
    units = []
    if _reversible_units(backbone):
        x = backbone.stem(x)
        for i, unit in enumerate(backbone.units[:num_units]):
            if i > 0:
                x = backbone.transitions[i - 1](x)
            blocks = unit.blocks
            states = [_boundary(*blocks[0].split(x), track=track)]
            for block in blocks:
                states.append(_boundary(*block(*states[-1]), track=track))
            x = blocks[-1].merge(*states[-1])
            units.append(states)
    elif hasattr(backbone, 'res_layers'):
        x = _resnet_stem(backbone, x)
        for name in backbone.res_layers[:num_units]:
            states = [_boundary(x, track=track)]
            for block in getattr(backbone, name):
                states.append(_boundary(block(states[-1][0]), track=track))
            x = states[-1][0]
            units.append(states)
    else:
        raise TypeError(f'{type(backbone).__name__}: only reversible '
                        'backbones (BaseReversibleNet) and ResNets with '
                        '`res_layers` can be walked block by block.')
    return units


def _is_two_state(backbone, state: Tuple[Tensor, ...], unit: int) -> bool:
    """Whether a unit's pair is ``(Y_{j-1}, Y_j)`` (Midpoint, Leapfrog)
    rather than the two halves of one state (Hamiltonian, RevNet)."""
    if not _reversible_units(backbone) or len(state) != 2:
        return False
    merged = backbone.units[unit].blocks[-1].merge(*state)
    return merged.shape[1] != state[0].shape[1] + state[1].shape[1]


def _state_norm(backbone, state: Tuple[Tensor, ...], unit: int) -> Tensor:
    """Per-sample norm of the state a unit carries.

    For the two-state schemes (Midpoint, Leapfrog) that is the current state
    ``Y_j`` (what ``merge`` returns); for the channel-half schemes it is
    the whole of ``(Y, Z)``.
    """
    if _reversible_units(backbone):
        state = (backbone.units[unit].blocks[-1].merge(*state), )
    return torch.sqrt(sum(t.detach().flatten(1).pow(2).sum(1)
                          for t in state))


def _grad_norm(backbone, state: Tuple[Tensor, ...], unit: int) -> Tensor:
    """Per-sample norm of the gradient with respect to the state.

    For the channel-half schemes and ResNets, the gradient with respect to
    the whole state. For the two-state schemes, the gradient with respect
    to the current state ``Y_j`` with the velocity ``Y_j - Y_{j-1}`` held
    fixed, i.e. the sum of the gradients of the pair: the pair's own
    gradient grows linearly along the unit even without any ``F`` (the
    leapfrog map ``(a, b) -> (b, 2b - a)`` is a Jordan block), which says
    nothing about stability. A part of the state that the loss does not
    depend on (``Y_{n-1}`` at the end of a unit) has no gradient and counts
    as zero.
    """
    grads = [
        t.grad if t.grad is not None else torch.zeros_like(t) for t in state
    ]
    if _is_two_state(backbone, state, unit):
        grads = [grads[0] + grads[1]]
    return torch.sqrt(sum(g.flatten(1).pow(2).sum(1) for g in grads))


def _pair_grad_norm(state: Tuple[Tensor, ...]) -> Tensor:
    """Per-sample norm of the gradient with respect to the whole pair."""
    return torch.sqrt(
        sum(t.grad.flatten(1).pow(2).sum(1) if t.grad is not None else
            torch.zeros(t.shape[0], dtype=t.dtype) for t in state))


def _input_size(backbone, unit: int, size: int) -> int:
    """Image size at which unit ``unit`` sees ``size x size`` maps."""
    stem_stride = getattr(backbone, 'stem_stride', 1)
    if not _reversible_units(backbone) and not hasattr(
            backbone, 'forward_stem'):
        from mmpretrain.models.backbones import ResNet_CIFAR
        if not isinstance(backbone, ResNet_CIFAR):
            stem_stride = 4
    return size * stem_stride * 2**unit


def depth_profile(backbone: nn.Module,
                  batch_size: int = 8,
                  input_size: int = 32,
                  mode: str = 'train',
                  seed: int = 0) -> List[dict]:
    """State and gradient norms at every block boundary of every unit.

    The input is standard normal noise. The loss is ``sum(out * w)`` with
    ``out`` the last unit's output and ``w`` a fixed standard normal
    tensor, so the gradient at the output is ``w``. In ``'train'`` mode the
    norms use batch statistics (running statistics are left untouched); in
    ``'eval'`` mode, running statistics.

    Returns:
        list[dict]: One dict per unit with ``state_norm`` and ``grad_norm``
        (mean over the batch of the per-sample norms, at the unit's input
        and after each block) and their ratios to the unit's input
        (``state_ratio``) and to the unit's output (``grad_ratio``).
    """
    from mmrevode.models.reversible import frozen_running_stats
    generator = torch.Generator().manual_seed(seed)
    param = next(backbone.parameters())
    x = torch.randn(batch_size, getattr(backbone, 'in_channels', 3),
                    input_size, input_size, generator=generator).to(param)
    was_training = backbone.training
    backbone.train(mode == 'train')
    try:
        with torch.enable_grad(), frozen_running_stats(backbone):
            units = walk(backbone, x, track=True)
            last = units[-1][-1]
            out = backbone.units[-1].blocks[-1].merge(*last) \
                if _reversible_units(backbone) else last[0]
            weight = torch.randn(out.shape, generator=generator).to(out)
            (out * weight).sum().backward()
    finally:
        backbone.train(was_training)
    results = []
    for i, states in enumerate(units):
        state = torch.stack([_state_norm(backbone, s, i) for s in states])
        grad = torch.stack([_grad_norm(backbone, s, i) for s in states])
        pair_grad = torch.stack([_pair_grad_norm(s) for s in states])
        results.append(
            dict(
                state_norm=state.mean(1).tolist(),
                grad_norm=grad.mean(1).tolist(),
                pair_grad_norm=pair_grad.mean(1).tolist(),
                state_ratio=(state / state[:1]).mean(1).tolist(),
                grad_ratio=(grad / grad[-1:]).mean(1).tolist()))
    backbone.zero_grad(set_to_none=True)
    return results


# -- the right-hand sides ----------------------------------------------------------
def _rhs_hamiltonian(block, state):
    y, z = state
    return lambda s: (block.f1(s[1]), -block.f2(s[0])), (y, z)


def _rhs_revnet(block, state):
    x1, x2 = state
    return lambda s: (block.f(s[1]), block.g(s[0])), (x1, x2)


def _rhs_leapfrog(block, state):
    previous, current = state
    velocity = (current - previous) / block.h
    return lambda s: (s[1], -block.f(s[0])), (current, velocity)


def _rhs_midpoint(block, state):
    return lambda s: (block.f(s[0]), ), (state[1], )


def _rhs_basic_block(block, state):
    if block.downsample is not None or block.conv1.stride != (1, 1):
        raise ValueError('This ResNet block changes the shape of its input; '
                         'pick another block (its right-hand side is not a '
                         'map of the state to itself).')

    def rhs(s):
        out = block.relu(block.norm1(block.conv1(s[0])))
        return (block.norm2(block.conv2(out)), )

    return rhs, tuple(state)


def _right_hand_sides() -> Dict[type, Callable]:
    from mmpretrain.models.backbones.resnet import BasicBlock

    from mmrevode.models.blocks import (HamiltonianBlock, LeapfrogBlock,
                                        MidpointBlock, RevNetBlock)
    return {
        HamiltonianBlock: _rhs_hamiltonian,
        RevNetBlock: _rhs_revnet,
        LeapfrogBlock: _rhs_leapfrog,
        MidpointBlock: _rhs_midpoint,
        BasicBlock: _rhs_basic_block,
    }


def right_hand_side(block: nn.Module, state: Tuple[Tensor, ...]
                    ) -> Tuple[Callable, Tuple[Tensor, ...]]:
    """The block's continuous-time right-hand side and its state.

    Args:
        block: A block of a supported type (see the module docstring).
        state: The block's input, as :func:`walk` records it.

    Returns:
        tuple: ``(rhs, point)``: ``rhs`` maps a tuple of tensors shaped like
        ``point`` to a tuple of the same shapes; ``point`` is the state at
        which to linearise.
    """
    for cls, make in _right_hand_sides().items():
        if isinstance(block, cls):
            return make(block, state)
    raise TypeError(f'No right-hand side is known for {type(block).__name__}'
                    f'; supported: '
                    f'{sorted(c.__name__ for c in _right_hand_sides())}.')


def _blocks_of(backbone, unit: int) -> Sequence[nn.Module]:
    if _reversible_units(backbone):
        return backbone.units[unit].blocks
    return getattr(backbone, backbone.res_layers[unit])


def jacobian_spectrum(backbone: nn.Module,
                      unit: int = 0,
                      block: int = 0,
                      size: int = 4,
                      seed: int = 0) -> dict:
    """Eigenvalues of the Jacobian of one block's right-hand side.

    The backbone is copied to float64 and put in eval mode, run on one
    standard normal image whose maps in unit ``unit`` are ``size x size``,
    and the right-hand side of block ``block`` of that unit is linearised
    at the state the block receives.

    Returns:
        dict: ``eig_real``, ``eig_imag``, the matrix dimension ``dim``,
        ``spectral_radius``, ``max_abs_real``, ``max_real``, and
        ``real_to_radius`` = ``max_abs_real / spectral_radius``.
    """
    model = copy.deepcopy(backbone).double().eval()
    num_units = len(model.units) if _reversible_units(model) else len(
        model.res_layers)
    if not -num_units <= unit < num_units:
        raise ValueError(f'unit {unit} out of range: the backbone has '
                         f'{num_units} units.')
    unit %= num_units
    blocks = _blocks_of(model, unit)
    if not -len(blocks) <= block < len(blocks):
        raise ValueError(f'block {block} out of range: unit {unit} has '
                         f'{len(blocks)} blocks.')
    block %= len(blocks)
    generator = torch.Generator().manual_seed(seed)
    image_size = _input_size(model, unit, size)
    x = torch.randn(1, getattr(model, 'in_channels', 3), image_size,
                    image_size, generator=generator, dtype=torch.float64)
    with torch.no_grad():
        state = walk(model, x, track=False, num_units=unit + 1)[unit][block]
    rhs, point = right_hand_side(blocks[block], state)
    shapes = [p.shape for p in point]
    sizes = [p.numel() for p in point]

    def flat_rhs(v: Tensor) -> Tensor:
        parts = [
            t.view(s) for t, s in zip(torch.split(v, sizes), shapes)
        ]
        return torch.cat([t.reshape(-1) for t in rhs(tuple(parts))])

    v = torch.cat([p.reshape(-1) for p in point]).detach()
    jac = torch.func.jacrev(flat_rhs)(v).detach()
    # LAPACK's nonsymmetric eigensolver gains little from threads at these
    # sizes and loses much when the cores are shared (n = 1024 on 2 busy
    # cores: 9 s with 2 threads, 1 s with one).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        eig = torch.linalg.eigvals(jac)
    finally:
        torch.set_num_threads(threads)
    radius = eig.abs().max().item()
    max_abs_real = eig.real.abs().max().item()
    return dict(
        unit=unit,
        block=block,
        block_type=type(blocks[block]).__name__,
        size=size,
        dim=int(jac.shape[0]),
        eig_real=eig.real.tolist(),
        eig_imag=eig.imag.tolist(),
        spectral_radius=radius,
        max_abs_real=max_abs_real,
        max_real=eig.real.max().item(),
        real_to_radius=max_abs_real / radius if radius > 0 else 0.0)


def analyse(backbone: nn.Module,
            batch_size: int = 8,
            input_size: int = 32,
            mode: str = 'train',
            jac_unit: int = 0,
            jac_block: int = 0,
            jac_size: int = 4,
            seed: int = 0) -> dict:
    """Depth profile and block spectrum of one backbone (see the module
    docstring)."""
    if mode not in ('train', 'eval'):
        raise ValueError(f"mode must be 'train' or 'eval', got {mode!r}.")
    jacobian = jacobian_spectrum(backbone, jac_unit, jac_block, jac_size,
                                 seed)
    units = depth_profile(backbone, batch_size, input_size, mode, seed)
    return dict(
        backbone=type(backbone).__name__,
        params=sum(p.numel() for p in backbone.parameters()),
        mode=mode,
        batch_size=batch_size,
        input_size=input_size,
        units=units,
        jacobian=jacobian)


# -- the picture -------------------------------------------------------------------
def plot(results: Sequence[dict], path: str, title: Optional[str] = None):
    """Write the three panels of ``results`` (from :func:`analyse`, each
    with a ``name``) to ``path``."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(17, 5.2))
    colors = plt.rcParams['axes.prop_cycle'].by_key()['color']
    for k, result in enumerate(results):
        color = colors[k % len(colors)]
        for key, ax in (('state_ratio', axes[0]), ('grad_ratio', axes[1])):
            for i, unit in enumerate(result['units']):
                values = unit[key]
                depth = i + np.arange(len(values)) / (len(values) - 1)
                ax.plot(
                    depth,
                    values,
                    color=color,
                    marker='.' if len(values) <= 20 else None,
                    label=result['name'] if i == 0 else None)
        jac = result['jacobian']
        radius = jac['spectral_radius'] or 1.0
        axes[2].scatter(
            np.asarray(jac['eig_real']) / radius,
            np.asarray(jac['eig_imag']) / radius,
            s=8,
            color=color,
            alpha=0.6,
            label=f"{jac['block_type']}, rho={radius:.3g}")
    num_units = max(len(r['units']) for r in results)
    for ax, label in ((axes[0], 'state norm / unit input'),
                      (axes[1], 'gradient norm / unit output')):
        ax.set_yscale('log')
        ax.set_xlabel('depth (unit + fraction of its blocks)')
        ax.set_ylabel(label)
        for boundary in range(1, num_units):
            ax.axvline(boundary, color='0.8', lw=0.8, zorder=0)
        ax.grid(True, which='both', alpha=0.3)
    axes[0].set_title('Forward propagation')
    axes[1].set_title('Backward propagation')
    axes[2].set_title('Eigenvalues of one block\'s right-hand side')
    axes[2].axvline(0, color='0.5', lw=0.8)
    axes[2].axhline(0, color='0.5', lw=0.8)
    axes[2].set_xlabel('Re(lambda) / rho')
    axes[2].set_ylabel('Im(lambda) / rho')
    axes[2].set_xlim(-1.1, 1.1)
    axes[2].set_ylim(-1.1, 1.1)
    axes[2].set_aspect('equal')
    axes[2].legend(fontsize=7, loc='upper left', bbox_to_anchor=(1.02, 1))
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(
        handles,
        labels,
        loc='lower center',
        ncol=min(len(labels), 6),
        fontsize=8,
        frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def summary(result: dict) -> str:
    """One line: growth per unit forward and backward, and the spectrum."""
    units = result['units']
    forward = ', '.join(f'{u["state_ratio"][-1]:.3g}' for u in units)
    backward = ', '.join(f'{u["grad_ratio"][0]:.3g}' for u in units)
    jac = result['jacobian']
    return (f'{result.get("name", result["backbone"])}: state norm x '
            f'[{forward}] and gradient norm x [{backward}] across each unit;'
            f' {jac["block_type"]} right-hand side: max|Re|/rho = '
            f'{jac["real_to_radius"]:.2e} (rho = {jac["spectral_radius"]:.3g}'
            f', n = {jac["dim"]})')


# -- command line --------------------------------------------------------------------
def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        description='State and gradient norms along the depth of a backbone '
        'and the spectrum of one block\'s right-hand side.')
    parser.add_argument(
        'models',
        nargs='+',
        help='config files, or TYPE[:ARCH] such as HamiltonianNet:74, '
        'RevNet:164, CifarResNet:56')
    parser.add_argument(
        '--checkpoint',
        nargs='+',
        default=None,
        help='one checkpoint per model ("none" for a fresh initialisation)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config files, key=value')
    parser.add_argument(
        '--backbone-options',
        nargs='+',
        action=DictAction,
        help='override arguments of every backbone, e.g. h=0.05')
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument(
        '--input-size', type=int, default=32, help='image size (square)')
    parser.add_argument(
        '--mode',
        choices=['train', 'eval'],
        default=None,
        help='norms with batch (train) or running (eval) statistics; '
        'defaults to eval with a checkpoint, train without')
    parser.add_argument(
        '--jac-unit', type=int, default=0, help='unit of the block')
    parser.add_argument(
        '--jac-block', type=int, default=0, help='block within the unit')
    parser.add_argument(
        '--jac-size',
        type=int,
        default=4,
        help='spatial size of the state the Jacobian is taken at (the '
        'matrix has (channels x size^2)^2 entries)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--out-dir',
        default=DEFAULT_OUT_DIR,
        help=f'where to write stability.png and stability.json '
        f'(default: {DEFAULT_OUT_DIR})')
    parser.add_argument(
        '--name', default='stability', help='base name of the output files')
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    checkpoints = args.checkpoint or [None] * len(args.models)
    if len(checkpoints) != len(args.models):
        raise SystemExit(f'--checkpoint: got {len(checkpoints)} for '
                         f'{len(args.models)} models ("none" for none).')
    torch.manual_seed(args.seed)
    results = []
    for model, checkpoint in zip(args.models, checkpoints):
        if checkpoint is not None and checkpoint.lower() == 'none':
            checkpoint = None
        name, backbone = build_backbone(model, checkpoint, args.cfg_options,
                                        args.backbone_options)
        mode = args.mode or ('eval' if checkpoint else 'train')
        result = analyse(backbone, args.batch_size, args.input_size, mode,
                         args.jac_unit, args.jac_block, args.jac_size,
                         args.seed)
        result.update(name=name, model=model, checkpoint=checkpoint)
        results.append(result)
        print(summary(result))
    os.makedirs(args.out_dir, exist_ok=True)
    json_path = osp.join(args.out_dir, f'{args.name}.json')
    png_path = osp.join(args.out_dir, f'{args.name}.png')
    with open(json_path, 'w') as f:
        json.dump(dict(models=results), f, indent=1)
    plot(results, png_path,
         title='Stability at ' + ('initialisation' if not any(
             r['checkpoint'] for r in results) else 'the given checkpoints'))
    print(f'Wrote {png_path} and {json_path}')
    return dict(models=results, png=png_path, json=json_path)


if __name__ == '__main__':
    main()
