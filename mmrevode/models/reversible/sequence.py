"""A unit: blocks run in sequence by the reversible engine."""
from contextlib import contextmanager, nullcontext
from functools import partial
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.checkpoint import checkpoint

from .block import ReversibleBlock
from .fixed_point import RangeGuard, check_exact_step, to_grid
from .function import (ReversibleFunction, ReversibleOptions,
                       collect_parameters)
from .modes import Mode, parse_modes
from .probe import RebuildProbe
from .shift_step import ShiftStep, run_steps


class ReversibleSequence(nn.Module):
    """Run reversible blocks in sequence, in one of three execution modes.

    - ``'reversible'`` (default): during training, each run of consecutive
      reversible blocks is one :class:`ReversibleFunction`; no activation
      inside it is stored.
    - ``'plain'``: plain autograd, storing every activation.
    - ``'checkpoint'``: ``torch.utils.checkpoint`` around each block.

    ``mode`` may also be a list with one mode per block. All modes give the
    same outputs, gradients, batch-norm statistics and ``state_dict`` (see
    :mod:`.modes`). In eval mode, under ``torch.no_grad()`` and while the
    forward is being traced (``torch.jit.trace``, ``torch.onnx.export``, FLOP
    counters), the blocks simply run under plain autograd: a tracer records
    ordinary operations, and a gradient taken in eval mode (class activation
    maps, saliency, adversarial inputs) is exact, at the memory cost of plain
    autograd.

    With ``exact=True`` the pair is held on a fixed-point grid (float64
    multiples of ``2^-32``, :mod:`.fixed_point`) and every step adds its
    increment rounded to the grid, so the backward rebuilds every state bit
    for bit, in any precision and under autocast. Every mode (and eval)
    runs this same arithmetic, so outputs and ``state_dict`` still agree
    across modes; the rounding is the identity in the backward. A state
    that is not finite or reaches ``2^19`` in magnitude raises
    :class:`~.fixed_point.FixedPointRangeError`.

    Args:
        blocks (Sequence[ReversibleBlock]): The blocks of the unit. The first
            block's :meth:`~ReversibleBlock.split` makes the pair from the
            input and the last block's :meth:`~ReversibleBlock.merge` the
            output.
        mode (str | Sequence[str]): ``'reversible'``, ``'plain'`` or
            ``'checkpoint'``, or a list with one of them per block.
            Defaults to ``'reversible'``.
        preserve_rng_state (bool): Replay the random generators' states in
            the backward recompute, so that a block drawing random numbers
            (dropout, drop path) gets the gradients of the forward's draws.
            Costs nothing measurable for blocks that draw none: only the
            states before steps that drew random numbers are kept and
            replayed. Defaults to True.
        exact (bool): Hold the pair in fixed point so that the backward
            rebuilds it bit for bit (see above). Defaults to False.
    """

    def __init__(self,
                 blocks: Sequence[ReversibleBlock],
                 mode: Mode = 'reversible',
                 preserve_rng_state: bool = True,
                 exact: bool = False):
        super().__init__()
        if not blocks:
            raise ValueError('ReversibleSequence needs at least one block.')
        self.blocks = nn.ModuleList(blocks)
        self.mode = mode
        self.preserve_rng_state = preserve_rng_state
        self.exact = exact
        self._probe: Optional[RebuildProbe] = None

    @property
    def exact(self) -> bool:
        """Whether the pair is held in fixed point (exact reversal)."""
        return self._exact

    @exact.setter
    def exact(self, exact: bool):
        if not isinstance(exact, bool):
            raise TypeError('ReversibleSequence: exact must be True or False, '
                            f'got {exact!r}.')
        if exact:
            for block in self.blocks:
                for step in block.shift_steps():
                    check_exact_step(step.alpha, step.beta,
                                     type(block).__name__)
        self._exact = exact

    def probe_rebuild(self, probe: Optional[RebuildProbe]):
        """Compare the pairs rebuilt by the backward of the next training
        forward with the forward's (see :mod:`.probe`); None cancels.

        Only runs of reversible blocks rebuild anything; the probe is
        used by one forward and then dropped.
        """
        self._probe = probe

    @property
    def mode(self) -> Mode:
        """The mode of every block (a str), or a list of one per block."""
        modes = self.block_modes
        return modes[0] if len(set(modes)) == 1 else list(modes)

    @mode.setter
    def mode(self, mode: Mode):
        self.block_modes = parse_modes(mode, len(self.blocks),
                                       'ReversibleSequence', part='block')

    def forward(self, x: Tensor) -> Tensor:
        if x.dtype in (torch.float16, torch.bfloat16) and \
                torch.is_autocast_enabled(x.device.type):
            # Autocast lowers the precision of F's operations only; a state
            # pair kept in float32 is rebuilt far more accurately.
            x = x.float()
        a, b = self.blocks[0].split(x)
        block_steps = [block.shift_steps() for block in self.blocks]
        if not self.exact:
            a, b = self._run(block_steps, a, b)
            return self.blocks[-1].merge(a, b)
        dtype = a.dtype
        guard = RangeGuard(
            f'ReversibleSequence of {type(self.blocks[0]).__name__}s')
        guard.watch(a)
        if b is not a:
            guard.watch(b)
        a, b = (to_grid(a), ) * 2 if a is b else (to_grid(a), to_grid(b))
        a, b = self._run(block_steps, a, b, dtype, guard)
        guard.watch(b)
        guard.check()
        return self.blocks[-1].merge(a.to(dtype), b.to(dtype))

    def _run(self,
             block_steps: List[List[ShiftStep]],
             a: Tensor,
             b: Tensor,
             fixed_dtype: Optional[torch.dtype] = None,
             guard: Optional[RangeGuard] = None) -> Tuple[Tensor, Tensor]:
        exact = dict(fixed_dtype=fixed_dtype, guard=guard)
        if not torch.is_grad_enabled() or not self.training or _tracing():
            return run_steps([s for steps in block_steps for s in steps], a,
                             b, **exact)
        probe, self._probe = self._probe, None
        if probe is not None:
            probe.exact = fixed_dtype is not None
        for first, last in _runs(self.block_modes):
            mode = self.block_modes[first]
            if mode == 'reversible':
                steps = [s for block in block_steps[first:last] for s in block]
                options = ReversibleOptions(
                    self.preserve_rng_state, fixed_dtype,
                    probe.new_run() if probe is not None else None)
                pair = _run_reversible(steps, a, b, options)
                a, b = pair if pair is not None else run_steps(
                    steps, a, b, **exact)
                continue
            for block, steps in zip(self.blocks[first:last],
                                    block_steps[first:last]):
                if mode == 'checkpoint':
                    # The recompute must not update the batch norms'
                    # running statistics a second time.
                    a, b = checkpoint(
                        run_steps,
                        steps,
                        a,
                        b,
                        fixed_dtype,
                        guard,
                        use_reentrant=False,
                        preserve_rng_state=self.preserve_rng_state,
                        context_fn=partial(_recompute_contexts, block))
                else:
                    a, b = run_steps(steps, a, b, **exact)
        return a, b


Pair = Tuple[Tensor, Tensor]


def _runs(modes: Sequence[str]) -> List[Tuple[int, int]]:
    """``(first, last)`` of each run of equal consecutive modes."""
    bounds = [0] + [i for i in range(1, len(modes))
                    if modes[i] != modes[i - 1]] + [len(modes)]
    return list(zip(bounds, bounds[1:]))


@torch.compiler.disable
def _run_reversible(steps: List[ShiftStep], a: Tensor, b: Tensor,
                    options: ReversibleOptions) -> Optional[Pair]:
    """Run ``steps`` as one :class:`ReversibleFunction`, or return None if
    nothing needs a gradient.

    ``torch.compile`` leaves this call opaque: dynamo cannot trace the
    Function's backward (it calls ``torch.autograd.grad``), and trying to
    costs compile time and splits the caller into many graphs. The code
    around a unit (stem, transitions, head) still compiles, and step
    functions compiled on their own (``mmrevode.engine.compile_model``) run
    compiled inside the Function, in its forward and in its recompute.
    """
    params, param_index = collect_parameters(steps)
    if not (a.requires_grad or b.requires_grad
            or any(p.requires_grad for p in params)):
        return None
    return ReversibleFunction.apply(steps, param_index, options, a, b,
                                    *params)


def _tracing() -> bool:
    """Whether the forward is being recorded by ``torch.jit.trace`` (which
    ``torch.onnx.export`` and MMEngine's FLOP counter use) or by the
    TorchScript-based ONNX exporter, which cannot record a custom autograd
    Function's Python body."""
    return torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()


def _recompute_contexts(module: nn.Module):
    """Contexts of a checkpointed block's forward and of its recompute."""
    return nullcontext(), _restored_running_stats(module)


@contextmanager
def _restored_running_stats(module: nn.Module):
    """Undo the running-statistics update of the batch norms in ``module``.

    ``torch.utils.checkpoint`` checks that the recompute saves the same
    tensors as the forward, so the norms must run exactly as they did (with
    ``track_running_stats`` on); their buffers are restored afterwards.
    """
    saved = [(m, [buf.clone() for buf in _stats(m)])
             for m in module.modules() if isinstance(m, _BatchNorm)
             and m.training and m.track_running_stats]
    try:
        yield
    finally:
        for norm, values in saved:
            for buf, value in zip(_stats(norm), values):
                buf.copy_(value)


def _stats(norm: _BatchNorm):
    return [
        buf for buf in (norm.running_mean, norm.running_var,
                        norm.num_batches_tracked) if buf is not None
    ]
