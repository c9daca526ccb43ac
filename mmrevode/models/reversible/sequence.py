"""A unit: blocks run in sequence by the reversible engine."""
from contextlib import contextmanager, nullcontext
from functools import partial
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.checkpoint import checkpoint

from .block import ReversibleBlock
from .function import ReversibleFunction, collect_parameters
from .shift_step import ShiftStep, run_steps


class ReversibleSequence(nn.Module):
    """Run reversible blocks in sequence, with one of three executions.

    - ``reversible=True`` (default): during training, the whole sequence is
      one :class:`ReversibleFunction`; no activation inside it is stored.
    - ``reversible=False``: plain autograd, storing every activation.
    - ``reversible=False, with_cp=True``: ``torch.utils.checkpoint`` around
      each block, for comparison.

    All three give the same outputs, gradients and ``state_dict``. In eval
    mode, under ``torch.no_grad()`` and while the forward is being traced
    (``torch.jit.trace``, ``torch.onnx.export``, FLOP counters) or compiled
    for inference, the blocks simply run under plain autograd: a tracer
    records ordinary operations, and a gradient taken in eval mode (class
    activation maps, saliency, adversarial inputs) is exact, at the memory
    cost of plain autograd.

    Args:
        blocks (Sequence[ReversibleBlock]): The blocks of the unit. The first
            block's :meth:`~ReversibleBlock.split` makes the pair from the
            input and the last block's :meth:`~ReversibleBlock.merge` the
            output.
        reversible (bool): Use the memory-efficient backward.
            Defaults to True.
        with_cp (bool): Checkpoint each block under plain autograd. Only
            meaningful with ``reversible=False``. Defaults to False.
        preserve_rng_state (bool): Replay the random generators' states in
            the backward recompute. Needed only if a block draws random
            numbers (dropout, drop path). Defaults to False.
    """

    def __init__(self,
                 blocks: Sequence[ReversibleBlock],
                 reversible: bool = True,
                 with_cp: bool = False,
                 preserve_rng_state: bool = False):
        super().__init__()
        if not blocks:
            raise ValueError('ReversibleSequence needs at least one block.')
        self.blocks = nn.ModuleList(blocks)
        self.reversible = reversible
        self.with_cp = with_cp
        self.preserve_rng_state = preserve_rng_state

    def forward(self, x: Tensor) -> Tensor:
        if x.dtype in (torch.float16, torch.bfloat16) and \
                torch.is_autocast_enabled(x.device.type):
            # Autocast lowers the precision of F's operations only; a state
            # pair kept in float32 is rebuilt far more accurately.
            x = x.float()
        a, b = self.blocks[0].split(x)
        block_steps = [block.shift_steps() for block in self.blocks]
        a, b = self._run(block_steps, a, b)
        return self.blocks[-1].merge(a, b)

    def _run(self, block_steps: List[List[ShiftStep]], a: Tensor,
             b: Tensor) -> Tuple[Tensor, Tensor]:
        if not torch.is_grad_enabled() or not self.training or _tracing():
            return run_steps([s for steps in block_steps for s in steps], a,
                             b)
        if self.reversible:
            pair = _run_reversible(
                [s for block in block_steps for s in block], a, b,
                self.preserve_rng_state)
            if pair is not None:
                return pair
        for block, steps in zip(self.blocks, block_steps):
            if self.with_cp:
                # The recompute must not update the batch norms' running
                # statistics a second time.
                a, b = checkpoint(
                    run_steps,
                    steps,
                    a,
                    b,
                    use_reentrant=False,
                    preserve_rng_state=self.preserve_rng_state,
                    context_fn=partial(_recompute_contexts, block))
            else:
                a, b = run_steps(steps, a, b)
        return a, b


@torch.compiler.disable
def _run_reversible(steps: List[ShiftStep], a: Tensor, b: Tensor,
                    preserve_rng_state: bool) -> Optional[Tuple[Tensor,
                                                                 Tensor]]:
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
    return ReversibleFunction.apply(steps, param_index, preserve_rng_state, a,
                                    b, *params)


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
