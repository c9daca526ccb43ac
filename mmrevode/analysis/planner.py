"""Per-unit execution modes that fit a memory budget at the least time.

The memory of a training step that the modes change is what autograd saves
for backward (:func:`~mmrevode.analysis.memory.count_saved_bytes`). The
planner predicts it, and the step time, for every plan (one mode per unit)
from a cost model calibrated on the machine it runs on:

- **saved bytes**: one step of the model in each uniform mode, with the
  saved bytes split by the part whose forward saved them
  (:func:`~mmrevode.analysis.benchmark.backbone_parts`). Unit ``i`` in mode
  ``m`` costs what it saved in the all-``m`` step; the stem, the
  transitions and the head cost what they saved in the all-plain step.
  A plan's prediction is the sum: a tensor is counted by the first part
  that saves it, so a unit's input is counted by the unit in every mode.
- **step time**: each unit is timed alone (forward and backward of the
  unit on its own input, the modes in alternating rounds, the median of
  each); the rest of the step (stem, transitions, head, loss, optimizer) is
  the median all-plain step minus the sum of the units' plain times. A
  plan's time is the rest plus its units' times. On a CPU the clock is the
  process's CPU time (with one thread, steadier than the wall time on a
  shared machine); on a GPU, the wall time after synchronising.

The costs are additive, so the plans that are best for some budget (the
Pareto front of saved bytes against time) are found exactly by merging the
units one by one (:meth:`CostModel.front`), without listing every plan.

Example:
    >>> from mmrevode.analysis import calibrate, parse_spec
    >>> spec = parse_spec("HamiltonianNet:{'blocks': [2, 2], "
    ...                   "'widths': [8, 16]}")
    >>> costs = calibrate(spec, batch_size=4, input_size=(16, 16), steps=1)
    >>> plan = costs.choose(budget=costs.predict(['reversible', 'plain'])[0])
    >>> len(plan['modes'])
    2
"""
import copy
import itertools
import re
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from ..models.reversible import EXECUTION_MODES
from .benchmark import paired_ratio, paired_step_times, train_steps
from .memory import release_free_memory
from .models import image_size

_UNITS = {
    'b': 1, 'kb': 10**3, 'mb': 10**6, 'gb': 10**9, 'tb': 10**12,
    'kib': 2**10, 'mib': 2**20, 'gib': 2**30, 'tib': 2**40
}


def parse_bytes(text: Union[str, int, float]) -> int:
    """Bytes from ``'2GiB'``, ``'500MiB'``, ``'1.5 GB'`` or a number.

    Binary units (KiB, MiB, GiB, TiB) are powers of 1024, decimal ones (KB,
    MB, GB, TB) powers of 1000; a bare number is bytes.
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value, unit = text, 'b'
    else:
        match = re.fullmatch(r'\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([a-z]*)\s*',
                             str(text).lower())
        if not match or match.group(2) not in _UNITS and match.group(2):
            raise ValueError(
                f'cannot read {text!r} as a memory size: give a number of '
                'bytes or a number with one of B, KiB, MiB, GiB, TiB, KB, '
                'MB, GB, TB (e.g. 2GiB, 500MiB).')
        value, unit = float(match.group(1)), match.group(2) or 'b'
    if value < 0:
        raise ValueError(f'a memory size cannot be negative, got {text!r}.')
    return int(round(value * _UNITS[unit]))


def format_bytes(value: Optional[float]) -> str:
    """``value`` in KiB, MiB or (from 10 GiB on) GiB."""
    if value is None:
        return '-'
    if value >= 10 * 2**30:
        return f'{value / 2**30:.2f} GiB'
    if value >= 2**20:
        return f'{value / 2**20:.1f} MiB'
    return f'{value / 2**10:.1f} KiB'


def cfg_option(modes: Sequence[str], key: str = 'model.backbone.mode') -> str:
    """The ``--cfg-options`` entry that sets these modes."""
    if len(set(modes)) == 1:
        return f'{key}={modes[0]}'
    return f'{key}="[' + ','.join(f"'{m}'" for m in modes) + ']"'


class BudgetError(ValueError):
    """No plan fits the budget; ``smallest`` is the least reachable."""

    def __init__(self, message: str, smallest: dict):
        super().__init__(message)
        self.smallest = smallest


@dataclass
class CostModel:
    """Saved bytes and step time of each unit in each mode, and of the rest.

    Args:
        unit_bytes (list[dict]): Per unit, saved bytes by mode.
        unit_time (list[dict]): Per unit, seconds by mode.
        rest_bytes (int): Saved bytes of the stem, transitions and head.
        rest_time (float): Seconds of the rest of a step.
        clock (str): ``'cpu'`` or ``'wall'``: what the times are.
        info (dict): What was calibrated (model, batch, image size, ...).
    """
    unit_bytes: List[Dict[str, int]]
    unit_time: List[Dict[str, float]]
    rest_bytes: int
    rest_time: float
    clock: str = 'cpu'
    info: dict = field(default_factory=dict)

    @property
    def num_units(self) -> int:
        return len(self.unit_bytes)

    @property
    def modes(self) -> Tuple[str, ...]:
        return tuple(self.unit_bytes[0])

    def predict(self, modes: Sequence[str]) -> Tuple[int, float]:
        """Predicted saved bytes and step time of a plan."""
        if len(modes) != self.num_units:
            raise ValueError(f'a plan needs one mode per unit '
                             f'({self.num_units} units), got {list(modes)}.')
        return (self.rest_bytes +
                sum(b[m] for b, m in zip(self.unit_bytes, modes)),
                self.rest_time +
                sum(t[m] for t, m in zip(self.unit_time, modes)))

    def plan(self, modes: Sequence[str]) -> dict:
        """A plan's record: ``modes``, predicted ``saved_bytes``,
        ``step_time_s`` and ``time_ratio_to_plain``."""
        saved, seconds = self.predict(modes)
        _, plain = self.predict(['plain'] * self.num_units)
        return dict(
            modes=list(modes),
            saved_bytes=saved,
            step_time_s=seconds,
            time_ratio_to_plain=seconds / plain if plain else None)

    def all_plans(self) -> List[dict]:
        """Every plan (``len(modes) ** num_units`` of them), by saved
        bytes."""
        plans = [
            self.plan(modes)
            for modes in itertools.product(self.modes, repeat=self.num_units)
        ]
        return sorted(plans, key=lambda p: (p['saved_bytes'],
                                            p['step_time_s']))

    def front(self) -> List[dict]:
        """The plans no other plan beats in both saved bytes and time,
        from the smallest memory (slowest) to the fastest (largest)."""
        front = [(self.rest_bytes, self.rest_time, [])]
        for unit_bytes, unit_time in zip(self.unit_bytes, self.unit_time):
            front = _pareto([(saved + unit_bytes[m], seconds + unit_time[m],
                              modes + [m]) for saved, seconds, modes in front
                             for m in self.modes])
        return [self.plan(modes) for _, _, modes in front]

    def choose(self, budget: int) -> dict:
        """The fastest plan whose predicted saved bytes fit ``budget``.

        Raises:
            BudgetError: If none fits; the message gives the smallest
                reachable saved bytes and its plan.
        """
        front = self.front()
        fitting = [p for p in front if p['saved_bytes'] <= budget]
        if fitting:
            return min(fitting, key=lambda p: p['step_time_s'])
        smallest = front[0]
        info = self.info
        where = f" of {info['name']}" if 'name' in info else ''
        if 'batch_size' in info:
            where += (f" at batch {info['batch_size']}, "
                      f"{'x'.join(map(str, info['input_size']))} images")
        raise BudgetError(
            f'No plan{where} fits a budget of {format_bytes(budget)} '
            f'({budget} bytes) saved for backward: the smallest reachable '
            f"is {format_bytes(smallest['saved_bytes'])} "
            f"({smallest['saved_bytes']} bytes, predicted), with mode="
            f"{smallest['modes']}. Give a budget of at least that, or a "
            'smaller batch or image size.', smallest)

    def to_dict(self) -> dict:
        return asdict(self)


def _pareto(points: List[tuple]) -> List[tuple]:
    """``(bytes, time, plan)`` points not beaten in both, by bytes."""
    front = []
    for point in sorted(points, key=lambda p: (p[0], p[1])):
        if not front or point[1] < front[-1][1]:
            front.append(point)
    return front


def _clock(device: torch.device, clock: str) -> str:
    if clock == 'auto':
        return 'wall' if device.type == 'cuda' else 'cpu'
    if clock not in ('cpu', 'wall'):
        raise ValueError(f"clock must be 'auto', 'cpu' or 'wall', got "
                         f'{clock!r}.')
    return clock


def _unit_step_time(unit: nn.Module, x: Tensor, grad: Tensor,
                    clock: str) -> float:
    """Seconds of the unit's forward and backward on ``x``."""
    sync = x.device.type == 'cuda'
    unit.zero_grad(set_to_none=True)
    x = x.detach().requires_grad_()
    if sync:
        torch.cuda.synchronize(x.device)
    wall, cpu = time.perf_counter(), time.process_time()
    unit(x).backward(grad)
    if sync:
        torch.cuda.synchronize(x.device)
    return time.perf_counter() - wall if clock == 'wall' else \
        time.process_time() - cpu


def _unit_times(backbone: nn.Module, images: Tensor, modes: Sequence[str],
                steps: int, warmup: int, clock: str) -> List[Dict[str, float]]:
    """Median seconds of each unit in each mode, timed alone."""
    with torch.no_grad():
        inputs = [x for _, _, x, _ in backbone.iter_units(images)]
    times = []
    generator = torch.Generator().manual_seed(0)
    for unit, x in zip(backbone.units, inputs):
        with torch.no_grad():
            grad = torch.randn(unit(x).shape, generator=generator).to(x)
        samples = {mode: [] for mode in modes}
        for i in range(warmup + steps):
            for mode in (modes if i % 2 == 0 else modes[::-1]):
                unit.mode = mode
                seconds = _unit_step_time(unit, x, grad, clock)
                if i >= warmup:
                    samples[mode].append(seconds)
        times.append({m: statistics.median(s) for m, s in samples.items()})
    return times


def calibrate(spec: dict,
              batch_size: int,
              input_size: Union[int, Sequence[int]] = 32,
              modes: Sequence[str] = EXECUTION_MODES,
              steps: int = 3,
              warmup: int = 1,
              clock: str = 'auto',
              **options) -> CostModel:
    """Measure the cost model of a backbone on this machine.

    Args:
        spec (dict): The model (:func:`~mmrevode.analysis.models.model_spec`:
            a spec or a config file).
        batch_size (int): Images per step.
        input_size (int | Sequence[int]): Image size or ``(height, width)``.
            Defaults to 32.
        modes (Sequence[str]): The modes a unit may take.
            Defaults to all of them.
        steps (int): Timed rounds. Defaults to 3.
        warmup (int): Untimed rounds first. Defaults to 1.
        clock (str): ``'cpu'`` (process time), ``'wall'`` or ``'auto'``
            (wall on a GPU, CPU time otherwise). Defaults to ``'auto'``.
        **options: The training step (``device``, ``dtype``,
            ``backbone_options``, ``seed``, ``head``; see
            :func:`~mmrevode.analysis.benchmark.time_model`).

    Returns:
        CostModel: The calibrated costs.
    """
    modes = list(modes)
    size = image_size(input_size)
    runs = train_steps(spec, modes + ['plain'] * ('plain' not in modes),
                       batch_size, input_size=size, **options)
    clock = _clock(runs[modes[0]].device, clock)
    by_mode = {mode: run.saved_bytes(by_part=True)['saved_bytes_by_part']
               for mode, run in runs.items()}
    plain_parts = by_mode['plain']
    num_units = len(runs[modes[0]].model.backbone.units)
    unit_bytes = [{m: by_mode[m].get(f'unit{i}', 0) for m in modes}
                  for i in range(num_units)]
    rest_bytes = sum(v for k, v in plain_parts.items()
                     if not k.startswith('unit'))

    plain = runs.pop('plain')
    runs.clear()
    for _ in range(warmup):
        plain()
    walls, cpus = paired_step_times({'plain': plain}, steps)
    step_time = statistics.median(
        (walls if clock == 'wall' else cpus)['plain'])
    backbone = copy.deepcopy(plain.model.backbone)
    unit_time = _unit_times(backbone, plain.images, modes, steps, warmup,
                            clock)
    rest_time = max(step_time - sum(t['plain'] for t in unit_time), 0.0)
    del plain, backbone
    release_free_memory()
    info = dict(
        name=spec['name'],
        batch_size=batch_size,
        input_size=list(size),
        steps=steps,
        warmup=warmup,
        plain_step_time_s=step_time)
    return CostModel(unit_bytes, unit_time, rest_bytes, rest_time, clock,
                     info)


def measure_plans(spec: dict,
                  plans: Sequence[Sequence[str]],
                  batch_size: int,
                  input_size: Union[int, Sequence[int]] = 32,
                  steps: int = 3,
                  warmup: int = 1,
                  **options) -> List[dict]:
    """Measured saved bytes and paired step times of plans, against plain.

    Every plan and all-plain run with the same weights and batch, one step
    of each per round (:func:`~mmrevode.analysis.benchmark.
    paired_step_times`); the ratios are the medians over rounds of the
    per-round ratio to the all-plain step.

    Args:
        spec (dict): The model.
        plans (Sequence[Sequence[str]]): One mode per unit each.
        batch_size (int): Images per step.
        input_size (int | Sequence[int]): Image size or ``(height, width)``.
            Defaults to 32.
        steps (int): Timed rounds. Defaults to 3.
        warmup (int): Untimed steps of each plan first. Defaults to 1.
        **options: The training step (see :func:`calibrate`).

    Returns:
        list[dict]: Per plan ``modes``, ``saved_bytes``, ``step_time_s``,
        ``cpu_time_s``, ``time_ratio_to_plain``,
        ``cpu_time_ratio_to_plain``.
    """
    labels = {','.join(p): list(p) for p in plans}
    num_units = len(next(iter(labels.values())))
    labels.setdefault('plain-reference', ['plain'] * num_units)
    size = image_size(input_size)
    runs = train_steps(spec, labels, batch_size, input_size=size, **options)
    saved = {label: run.saved_bytes()['saved_bytes']
             for label, run in runs.items()}
    for run in runs.values():
        for _ in range(warmup):
            run()
    walls, cpus = paired_step_times(runs, steps)
    reference = ','.join(['plain'] * num_units)
    reference = reference if reference in runs else 'plain-reference'
    records = []
    for plan in plans:
        label = ','.join(plan)
        records.append(
            dict(
                modes=list(plan),
                saved_bytes=saved[label],
                step_time_s=statistics.median(walls[label]),
                cpu_time_s=statistics.median(cpus[label]),
                time_ratio_to_plain=paired_ratio(walls[label],
                                                 walls[reference]),
                cpu_time_ratio_to_plain=paired_ratio(cpus[label],
                                                     cpus[reference])))
    del runs
    release_free_memory()
    return records
