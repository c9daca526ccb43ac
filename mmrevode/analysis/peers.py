"""One unit run by mmrevode and by its peers, with the same weights.

A unit of additive shift steps (``alpha = 1``, ``beta = 0``: the
Hamiltonian and RevNet blocks) is an additive coupling network, which
MemCNN (``memcnn.AdditiveCoupling`` in an ``InvertibleModuleWrapper`` per
block) and RevLib (``revlib.ReversibleSequential``, one module per step)
run as well. The peers wrap the unit's own step functions (each scaled by
its ``gamma``), so every runner computes the same function with the same
parameters and the same batch norms:

==============  ==============================================================
runner          what runs the unit
==============  ==============================================================
``mmrevode``    the unit in ``mode='reversible'``
``plain``       the unit in ``mode='plain'`` (the reference)
``checkpoint``  the unit in ``mode='checkpoint'`` (``torch.utils.checkpoint``)
``memcnn``      MemCNN 1.5 (``pip install memcnn``), if installed
``revlib``      RevLib 1.7 (``pip install revlib``), if installed
==============  ==============================================================

:func:`compare_peers` reports per runner the float64 gradient error against
plain autograd, the batch-norm running-statistics updates of one step, the
bytes saved for backward (:func:`~mmrevode.analysis.memory.
count_saved_bytes`: tensors a peer keeps on its autograd context outside
``save_for_backward`` are not seen there, but are in the peak), the peak
memory of a step and the step time (median of paired rounds) against plain.
"""
import copy
import importlib.util
import statistics
from typing import Callable, Dict, List, Optional, Sequence

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..models.blocks.pairs import ChannelHalvesBlock
from ..models.reversible import ReversibleSequence
from .memory import (MemoryMeter, configure_malloc, release_free_memory,
                     run_in_fresh_process)
from .models import build_backbone, parse_spec
from .timing import paired_ratio, paired_step_times
from .training import TrainingModel, TrainStep

RUNNERS = ('mmrevode', 'plain', 'checkpoint', 'memcnn', 'revlib')
#: The packages of the peers (the optional ``bench`` extra).
PEER_PACKAGES = dict(memcnn='memcnn', revlib='revlib')


def available_runners() -> List[str]:
    """The runners whose packages are installed."""
    return [
        r for r in RUNNERS if r not in PEER_PACKAGES
        or importlib.util.find_spec(PEER_PACKAGES[r]) is not None
    ]


class ScaledStep(nn.Module):
    """``gamma * fn(x)``: a shift step's residual function for a peer."""

    def __init__(self, fn: nn.Module, gamma: float):
        super().__init__()
        self.fn = fn
        self.gamma = gamma

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(x) * self.gamma


class _FreshInput(nn.Module):
    """Run ``module`` on a copy of the input (MemCNN frees the storage of
    a block's input once it has the output)."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x: Tensor) -> Tensor:
        return self.module(x.clone())


def unit_runner(unit: ReversibleSequence, runner: str) -> nn.Module:
    """A module that maps the unit's input to its output with ``runner``,
    on the unit's own parameters and norms.

    Args:
        unit (ReversibleSequence): A unit of additive steps (Hamiltonian or
            RevNet blocks).
        runner (str): One of :data:`RUNNERS`.
    """
    if runner in ('mmrevode', 'plain', 'checkpoint'):
        shared = copy.copy(unit)  # the same blocks, its own mode
        shared.mode = 'reversible' if runner == 'mmrevode' else runner
        return shared
    steps = [s for block in unit.blocks for s in block.shift_steps()]
    if not all(isinstance(b, ChannelHalvesBlock) for b in unit.blocks) or \
            any(s.alpha != 1 or s.beta != 0 or not isinstance(s.fn, nn.Module)
                for s in steps) or len(steps) % 2:
        raise ValueError(f'{runner} runs additive couplings of channel '
                         'halves only (alpha = 1, beta = 0: Hamiltonian and '
                         'RevNet blocks).')
    scaled = [ScaledStep(s.fn, s.gamma) for s in steps]
    if runner == 'memcnn':
        import memcnn
        return _FreshInput(
            nn.Sequential(*[
                memcnn.InvertibleModuleWrapper(
                    memcnn.AdditiveCoupling(f, g, split_dim=1),
                    keep_input=False,
                    keep_input_inverse=False)
                for f, g in zip(scaled[::2], scaled[1::2])
            ]))
    if runner == 'revlib':
        import revlib
        return revlib.ReversibleSequential(*scaled, split_dim=1)
    raise ValueError(f'runner must be one of {RUNNERS}, got {runner!r}.')


def _norms(module: nn.Module) -> List[_BatchNorm]:
    return [m for m in module.modules() if isinstance(m, _BatchNorm)]


def unit_step(runner: nn.Module, x: Tensor, grad: Tensor) -> TrainStep:
    """The step of a unit's runner: forward on a fresh copy of ``x`` that
    requires grad, ``grad`` back-propagated from the output, no update;
    the input's gradient is left in ``input_grad``."""
    return TrainStep(
        TrainingModel(runner, 'projection'), x, grad, lr=None,
        input_grad=True)


def gradient_errors(unit: ReversibleSequence, x: Tensor,
                    runners: Sequence[str]) -> Dict[str, dict]:
    """float64 gradients of each runner against plain autograd, and the
    running-statistics updates of one step.

    Returns:
        dict: Per runner ``grad_error`` (the largest relative error over
        the input and each parameter; None where a gradient is missing),
        ``missing_grads`` (parameters without a gradient) and
        ``bn_updates_per_step`` (the increase of ``num_batches_tracked``).
    """
    unit = copy.deepcopy(unit).double().train()
    x = x.double()
    grad = torch.randn_like(unit(x).detach())
    params = list(unit.parameters())
    results, reference = {}, None
    for runner in ['plain'] + [r for r in runners if r != 'plain']:
        step = unit_step(unit_runner(unit, runner), x, grad)
        for p in params:
            p.grad = None
        before = [int(n.num_batches_tracked) for n in _norms(unit)]
        step.run()
        grad_x = step.input_grad
        after = [int(n.num_batches_tracked) for n in _norms(unit)]
        grads = [grad_x] + [p.grad for p in params]
        if reference is None:
            reference = grads
        errors = [((g - r).norm() / r.norm()).item()
                  for g, r in zip(grads, reference) if g is not None]
        missing = sum(g is None for g in grads[1:])
        results[runner] = dict(
            grad_error=None if missing else max(errors),
            missing_grads=missing,
            bn_updates_per_step=max(a - b for a, b in zip(after, before)))
    return {r: results[r] for r in runners}


def time_runners(unit: ReversibleSequence,
                 x: Tensor,
                 runners: Sequence[str],
                 steps: int = 3,
                 warmup: int = 1) -> Dict[str, dict]:
    """Saved bytes and paired step times (forward and backward of the unit)
    of each runner.

    Returns:
        dict: Per runner ``saved_bytes``, ``step_time_s``, ``cpu_time_s``,
        ``time_ratio_to_plain`` and ``cpu_time_ratio_to_plain``.
    """
    unit = unit.train()
    generator = torch.Generator().manual_seed(0)
    grad = torch.randn(unit(x).shape, generator=generator).to(x)
    steps_of = {r: unit_step(unit_runner(unit, r), x, grad) for r in runners}
    results = {r: step.saved_bytes() for r, step in steps_of.items()}
    walls, cpus = paired_step_times(steps_of, steps, warmup=warmup)
    for runner in runners:
        results[runner].update(
            step_time_s=statistics.median(walls[runner]),
            cpu_time_s=statistics.median(cpus[runner]),
            time_ratio_to_plain=paired_ratio(walls[runner], walls['plain']),
            cpu_time_ratio_to_plain=paired_ratio(cpus[runner],
                                                 cpus['plain']))
    return results


def unit_and_input(spec: str,
                   batch_size: int,
                   input_size: int = 32,
                   unit_index: int = 0,
                   seed: int = 0):
    """A unit of a freshly initialised backbone and its input (the stem's
    and transitions' output on random images)."""
    backbone = build_backbone(spec, seed=seed).train()
    images = torch.randn(
        batch_size, backbone.in_channels, input_size, input_size,
        generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        walk = list(backbone.iter_units(images, num_units=unit_index + 1))
    _, unit, x, _ = walk[-1]
    return unit, x


def peak_memory(spec: str, runners: Sequence[str], batch_size: int,
                input_size: int, unit_index: int, seed: int,
                trim_threshold: int) -> Dict[str, Optional[int]]:
    """Peak memory of one step of each runner, over what is held before
    it; what :func:`compare_peers` runs in a fresh process."""
    configure_malloc(trim_threshold)
    torch.set_num_threads(1)
    unit, x = unit_and_input(spec, batch_size, input_size, unit_index, seed)
    grad = torch.randn_like(unit(x).detach())
    meter = MemoryMeter('cpu')
    peaks = {}
    for runner in runners:
        step = unit_step(unit_runner(unit, runner), x, grad)
        step.run()  # warm-up
        unit.zero_grad(set_to_none=True)
        release_free_memory()
        meter.start()
        step.run()
        peaks[runner] = meter.peak()
        unit.zero_grad(set_to_none=True)
    return peaks


def compare_peers(spec: str,
                  runners: Optional[Sequence[str]] = None,
                  batch_size: int = 64,
                  input_size: int = 32,
                  unit_index: int = 0,
                  steps: int = 3,
                  warmup: int = 1,
                  seed: int = 0,
                  malloc_trim_threshold: int = 1 << 20,
                  progress: Optional[Callable[[str], None]] = None
                  ) -> List[dict]:
    """Compare the runners on one unit of a model.

    Args:
        spec (str): The model, ``'TYPE[:ARCH]'`` (Hamiltonian or RevNet).
        runners (Sequence[str], optional): Defaults to the installed ones.
        batch_size (int): Images per step. Defaults to 64.
        input_size (int): Height and width of the images. Defaults to 32.
        unit_index (int): The unit. Defaults to 0.
        steps (int): Timed rounds. Defaults to 3.
        warmup (int): Untimed rounds first. Defaults to 1.
        seed (int): Of the weights and the data. Defaults to 0.
        malloc_trim_threshold (int): The peaks are measured in a fresh
            process with this glibc setting (see
            :func:`~mmrevode.analysis.memory.configure_malloc`); negative:
            not measured. Defaults to 1 MiB.
        progress (callable, optional): Called with what runs next.

    Returns:
        list[dict]: One record per runner: ``name``, ``runner``,
        ``unit``, ``batch_size``, the fields of :func:`gradient_errors`
        (on a batch of 4 in float64) and :func:`time_runners`, and
        ``peak_bytes`` with ``peak_ratio_to_plain``.
    """
    runners = list(runners or available_runners())
    if 'plain' not in runners:
        runners.append('plain')
    progress = progress or (lambda what: None)
    name = parse_spec(spec)['name']
    progress(f'{name}: float64 gradients')
    unit, x = unit_and_input(spec, 4, input_size, unit_index, seed)
    errors = gradient_errors(unit, x, runners)
    progress(f'{name}: times and saved bytes at batch {batch_size}')
    unit, x = unit_and_input(spec, batch_size, input_size, unit_index, seed)
    timings = time_runners(unit, x, runners, steps, warmup)
    del unit, x
    release_free_memory()
    peaks = dict.fromkeys(runners)
    if malloc_trim_threshold >= 0:
        progress(f'{name}: peak memory in a fresh process')
        peaks = run_in_fresh_process(
            peak_memory, spec=spec, runners=runners, batch_size=batch_size,
            input_size=input_size, unit_index=unit_index, seed=seed,
            trim_threshold=malloc_trim_threshold)
    return [
        dict(
            name=name,
            runner=runner,
            unit=unit_index,
            batch_size=batch_size,
            **errors[runner],
            **timings[runner],
            peak_bytes=peaks[runner],
            peak_ratio_to_plain=peaks[runner] / peaks['plain']
            if peaks[runner] is not None and peaks['plain'] else None)
        for runner in runners
    ]
