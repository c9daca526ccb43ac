"""Forward and backward stability of a backbone along its depth.

For a backbone, :func:`analyse_stability` measures

1. **forward propagation**: the norm of the state after every block of
   every unit, relative to the unit's input;
2. **backward propagation**: the norm of the gradient of a fixed random
   projection of the last unit's output with respect to the state after
   every block, relative to the gradient at the unit's output;
3. **the spectrum of one block's right-hand side**: the eigenvalues of the
   Jacobian of the continuous-time system the block discretises, at the
   state the block sees for a small random input (computed with
   ``torch.func.jacrev`` in float64, norms in eval mode).

Each block states its right-hand side
(:func:`mmrevode.models.blocks.right_hand_side`, which lists them). The
Hamiltonian, Leapfrog and Midpoint Jacobians have (up to round-off) purely
imaginary eigenvalues: their flows neither grow nor decay. RevNet's and
ResNet's have eigenvalues with real parts of both signs.
"""
import copy
from typing import Callable, Iterator, List, Optional, Tuple

import torch
from torch import Tensor, nn

from ..models.blocks import TwoStateBlock, right_hand_side
from ..models.reversible import frozen_running_stats


# -- walking through the depth ---------------------------------------------
def iter_units(backbone: nn.Module,
               x: Tensor,
               run_unit: Optional[Callable] = None,
               num_units: Optional[int] = None) -> Iterator[tuple]:
    """``backbone.iter_units``, or the same walk through the stages of one
    of MMPretrain's ResNets (with ``res_layers``)."""
    if hasattr(backbone, 'iter_units'):
        yield from backbone.iter_units(x, run_unit, num_units)
        return
    if not hasattr(backbone, 'res_layers'):
        raise TypeError(f'{type(backbone).__name__}: only backbones with '
                        '`iter_units` (the reversible ones, CifarResNet) '
                        'and ResNets with `res_layers` can be walked block '
                        'by block.')
    from mmpretrain.models.backbones import ResNet_CIFAR
    run_unit = run_unit or (lambda stage, inputs: stage(inputs))
    if getattr(backbone, 'deep_stem', False):
        x = backbone.stem(x)
    else:
        x = backbone.relu(backbone.norm1(backbone.conv1(x)))
    if not isinstance(backbone, ResNet_CIFAR):
        x = backbone.maxpool(x)
    for i, name in enumerate(backbone.res_layers[:num_units]):
        stage = getattr(backbone, name)
        out = run_unit(stage, x)
        yield i, stage, x, out
        x = out


def _num_units(backbone: nn.Module) -> int:
    units = getattr(backbone, 'units', None)
    return len(units) if units is not None else len(backbone.res_layers)


def _unit_view(unit: nn.Module) -> tuple:
    """``(blocks, split, step, merge)`` of a unit: a reversible unit's
    blocks map a pair to a pair, a ResNet stage's a tensor to a tensor; a
    state is a tuple of tensors either way."""
    if hasattr(unit, 'blocks'):
        blocks = list(unit.blocks)
        return (blocks, blocks[0].split, lambda block, s: block(*s),
                lambda s: blocks[-1].merge(*s))
    return (list(unit), lambda x: (x, ), lambda block, s: (block(s[0]), ),
            lambda s: s[0])


def _boundary(*tensors: Tensor, track: bool) -> Tuple[Tensor, ...]:
    """Fresh copies of the state, whose gradients are the adjoint state."""
    out = tuple(t.clone() for t in tensors)
    if track:
        for t in out:
            t.retain_grad()
    return out


def walk_units(backbone: nn.Module,
               x: Tensor,
               track: bool = True,
               num_units: Optional[int] = None
               ) -> Tuple[List[Tuple[nn.Module, list]], Tensor]:
    """Run the backbone block by block under plain autograd.

    Args:
        backbone (nn.Module): A backbone (see :func:`iter_units`).
        x (Tensor): The input images.
        track (bool): Make each state a fresh tensor whose ``.grad`` is
            kept. Defaults to True.
        num_units (int, optional): Run only the first units.
            Defaults to all.

    Returns:
        tuple: ``(units, output)``: for every unit (stage), the unit and
        the states at its boundaries (its input, then the state after each
        block; a state is the pair ``(a, b)`` of a reversible unit or the
        single tensor of a ResNet stage); and the last unit's output.
    """
    units = []

    def run_blocks(unit: nn.Module, inputs: Tensor) -> Tensor:
        blocks, split, step, merge = _unit_view(unit)
        states = [_boundary(*split(inputs), track=track)]
        for block in blocks:
            states.append(_boundary(*step(block, states[-1]), track=track))
        units.append((unit, states))
        return merge(states[-1])

    out = None
    for _, _, _, out in iter_units(backbone, x, run_blocks, num_units):
        pass
    return units, out


def _is_two_state(unit: nn.Module, state: Tuple[Tensor, ...]) -> bool:
    """Whether a unit's pair is ``(Y_{j-1}, Y_j)`` (Midpoint, Leapfrog)
    rather than the two halves of one state (Hamiltonian, RevNet)."""
    return len(state) == 2 and isinstance(
        getattr(unit, 'blocks', [None])[-1], TwoStateBlock)


def _state_norm(unit: nn.Module, state: Tuple[Tensor, ...]) -> Tensor:
    """Per-sample norm of the state a unit carries.

    For the two-state schemes (Midpoint, Leapfrog) that is the current state
    ``Y_j`` (what ``merge`` returns); for the channel-half schemes it is
    the whole of ``(Y, Z)``.
    """
    if hasattr(unit, 'blocks'):
        state = (unit.blocks[-1].merge(*state), )
    return torch.sqrt(sum(t.detach().flatten(1).pow(2).sum(1)
                          for t in state))


def _grad_norm(unit: nn.Module, state: Tuple[Tensor, ...]) -> Tensor:
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
    if _is_two_state(unit, state):
        grads = [grads[0] + grads[1]]
    return torch.sqrt(sum(g.flatten(1).pow(2).sum(1) for g in grads))


def _pair_grad_norm(state: Tuple[Tensor, ...]) -> Tensor:
    """Per-sample norm of the gradient with respect to the whole pair."""
    return torch.sqrt(
        sum(t.grad.flatten(1).pow(2).sum(1) if t.grad is not None else
            torch.zeros(t.shape[0], dtype=t.dtype) for t in state))


def _input_size(backbone: nn.Module, unit: int, size: int) -> int:
    """Image size at which unit ``unit`` sees ``size x size`` maps."""
    stem_stride = getattr(backbone, 'stem_stride', 1)
    if not hasattr(backbone, 'iter_units'):
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
    generator = torch.Generator().manual_seed(seed)
    param = next(backbone.parameters())
    x = torch.randn(batch_size, getattr(backbone, 'in_channels', 3),
                    input_size, input_size, generator=generator).to(param)
    was_training = backbone.training
    backbone.train(mode == 'train')
    try:
        with torch.enable_grad(), frozen_running_stats(backbone):
            units, out = walk_units(backbone, x, track=True)
            weight = torch.randn(out.shape, generator=generator).to(out)
            (out * weight).sum().backward()
    finally:
        backbone.train(was_training)
    results = []
    for unit, states in units:
        state = torch.stack([_state_norm(unit, s) for s in states])
        grad = torch.stack([_grad_norm(unit, s) for s in states])
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
    num_units = _num_units(model)
    if not -num_units <= unit < num_units:
        raise ValueError(f'unit {unit} out of range: the backbone has '
                         f'{num_units} units.')
    unit %= num_units
    generator = torch.Generator().manual_seed(seed)
    image_size = _input_size(model, unit, size)
    x = torch.randn(1, getattr(model, 'in_channels', 3), image_size,
                    image_size, generator=generator, dtype=torch.float64)
    with torch.no_grad():
        unit_module, states = walk_units(
            model, x, track=False, num_units=unit + 1)[0][unit]
    blocks = _unit_view(unit_module)[0]
    if not -len(blocks) <= block < len(blocks):
        raise ValueError(f'block {block} out of range: unit {unit} has '
                         f'{len(blocks)} blocks.')
    block %= len(blocks)
    rhs, point = right_hand_side(blocks[block], states[block])
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


def analyse_stability(backbone: nn.Module,
                      batch_size: int = 8,
                      input_size: int = 32,
                      mode: str = 'train',
                      jac_unit: int = 0,
                      jac_block: int = 0,
                      jac_size: int = 4,
                      seed: int = 0,
                      progress: Optional[Callable[[], None]] = None) -> dict:
    """Depth profile and block spectrum of one backbone.

    Args:
        backbone (nn.Module): The backbone.
        batch_size (int): Images of the depth profile. Defaults to 8.
        input_size (int): Their size. Defaults to 32.
        mode (str): ``'train'`` (batch statistics) or ``'eval'`` (running
            statistics) in the norms. Defaults to ``'train'``.
        jac_unit (int): Unit of the block whose spectrum is taken.
            Defaults to 0.
        jac_block (int): The block within the unit. Defaults to 0.
        jac_size (int): Spatial size of the state there. Defaults to 4.
        seed (int): Defaults to 0.
        progress (callable, optional): Called after the spectrum and after
            the depth profile.

    Returns:
        dict: ``backbone``, ``params``, ``mode``, ``batch_size``,
        ``input_size``, ``units`` (:func:`depth_profile`) and ``jacobian``
        (:func:`jacobian_spectrum`).
    """
    if mode not in ('train', 'eval'):
        raise ValueError(f"mode must be 'train' or 'eval', got {mode!r}.")
    progress = progress or (lambda: None)
    jacobian = jacobian_spectrum(backbone, jac_unit, jac_block, jac_size,
                                 seed)
    progress()
    units = depth_profile(backbone, batch_size, input_size, mode, seed)
    progress()
    return dict(
        backbone=type(backbone).__name__,
        params=sum(p.numel() for p in backbone.parameters()),
        mode=mode,
        batch_size=batch_size,
        input_size=input_size,
        units=units,
        jacobian=jacobian)
