"""Per-unit execution modes that fit a memory budget at the least time.

The memory of a training step that the modes change is what autograd saves
for backward (:func:`~mmrevode.analysis.memory.count_saved_bytes`). The
planner predicts it, and the step time, for every plan (one mode per unit)
from a cost model calibrated on the machine it runs on:

- **saved bytes**: one step of the model in each uniform mode, with the
  saved bytes split by the part whose forward saved them
  (:func:`~mmrevode.analysis.training.backbone_parts`). Unit ``i`` in mode
  ``m`` costs what it saved in the all-``m`` step; the stem, the
  transitions and the head cost what they saved in the all-plain step.
  A plan's prediction is the sum: a tensor is counted by the first part
  that saves it, so a unit's input is counted by the unit in every mode.
- **step time**: the time a unit adds to the all-plain step in mode ``m``
  is measured on a model with only that unit in ``m`` (one model per unit
  and mode other than plain), each of its steps paired with a step of an
  all-plain model taken just before or after it; a plan's time is the
  all-plain step plus what its units add. On a CPU the clock is the
  process's CPU time (with one thread, steadier than the wall time on a
  shared machine); on a GPU, the wall time after synchronising.

A backbone built with ``exact=True`` (``backbone_options=dict(exact=True)``
or a config that sets it) is calibrated and measured in exact mode: every
model, the all-plain reference included, holds fixed-point pairs, and the
saved bytes add up as in floating point (its units save float64 pairs).

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
import itertools
import statistics
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Sequence, Tuple, Union

import torch

from ..models.reversible import EXECUTION_MODES
from .cli import Progress, format_bytes
from .memory import release_free_memory
from .models import build_backbone, image_size
from .timing import ratios_to_reference
from .training import train_steps

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

    A plan's saved bytes are ``rest_bytes`` plus its units' ``unit_bytes``,
    its step time ``rest_time`` plus its units' ``unit_time``.

    Args:
        unit_bytes (list[dict]): Per unit, saved bytes by mode.
        unit_time (list[dict]): Per unit, seconds by mode (as
            :func:`calibrate` measures them: what the unit adds to the
            all-plain step, 0 for plain).
        rest_bytes (int): Saved bytes of the stem, transitions and head.
        rest_time (float): Seconds of the rest of a step (as calibrated:
            the all-plain step).
        clock (str): ``'cpu'`` or ``'wall'``: what the times are.
        info (dict): What was calibrated (model, batch, image size,
            ``exact``: whether the backbone runs in exact mode, ...).
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
        if info.get('exact'):
            where += ' (exact=True)'
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


def _measure(spec: dict, plans: Dict[str, List[str]], timed: Sequence[str],
             batch_size: int, input_size: Tuple[int, int], steps: int,
             warmup: int, by_part: bool, progress_bar: bool, options: dict):
    """Saved bytes of ``plans`` and the step-time ratios of the ``timed``
    ones to an all-plain reference model (same weights and batch), with a
    progress bar on stderr (a task per plan, warm-up step and pair)."""
    num_units = len(next(iter(plans.values())))
    labels = dict(plans, reference=['plain'] * num_units)
    progress = Progress(
        len(plans) + warmup * (len(timed) + 1) + steps * len(timed),
        progress_bar)
    runs = train_steps(
        spec, labels, batch_size, input_size=input_size, **options)
    reference = runs.pop('reference')
    saved = {}
    for label in plans:
        saved[label] = runs[label].saved_bytes(by_part)
        progress.update()
    timed_runs = {label: runs[label] for label in timed}
    for run in [reference, *timed_runs.values()]:
        for _ in range(warmup):
            run()
            progress.update()
    reference_times = []

    def timed_reference():
        reference_times.append(reference())
        return reference_times[-1]

    ratios = ratios_to_reference(timed_runs, timed_reference, steps,
                                 progress.update)
    progress.close()
    return saved, ratios, reference_times


def calibrate(spec: dict,
              batch_size: int,
              input_size: Union[int, Sequence[int]] = 32,
              modes: Sequence[str] = EXECUTION_MODES,
              steps: int = 3,
              warmup: int = 1,
              clock: str = 'auto',
              progress_bar: bool = False,
              **options) -> CostModel:
    """Measure the cost model of a backbone on this machine.

    Builds one model per uniform mode (for the saved bytes of each part)
    and one per unit and mode other than plain, with only that unit in
    that mode (for the time it adds), all with the same weights, and an
    all-plain reference; see the module docstring.

    Args:
        spec (dict): The model (:func:`~mmrevode.analysis.models.model_spec`:
            a spec or a config file).
        batch_size (int): Images per step.
        input_size (int | Sequence[int]): Image size or ``(height, width)``.
            Defaults to 32.
        modes (Sequence[str]): The modes a unit may take.
            Defaults to all of them.
        steps (int): Timed steps of each model, each next to a reference
            step. Defaults to 3.
        warmup (int): Untimed steps of each model first. Defaults to 1.
        clock (str): ``'cpu'`` (process time), ``'wall'`` or ``'auto'``
            (wall on a GPU, CPU time otherwise). Defaults to ``'auto'``.
        progress_bar (bool): Show a progress bar on stderr.
            Defaults to False.
        **options: The training step (``device``, ``dtype``,
            ``backbone_options``, ``seed``, ``head``; see
            :func:`~mmrevode.analysis.training.train_steps`).

    Returns:
        CostModel: The calibrated costs; ``unit_time`` holds the seconds a
        unit adds to the all-plain step (0 for plain) and ``rest_time``
        the all-plain step.
    """
    modes = list(dict.fromkeys(list(modes) + ['plain']))
    size = image_size(input_size)
    backbone = build_backbone(
        spec, dict(options.get('backbone_options') or {}, mode='plain'))
    num_units = len(backbone.units)
    exact = bool(getattr(backbone, 'exact', False))
    del backbone
    plans = {f'all {m}': [m] * num_units for m in modes}
    switched = {}
    for i, mode in itertools.product(range(num_units), modes):
        if mode != 'plain':
            switched[f'unit {i} {mode}'] = ['plain'] * num_units
            switched[f'unit {i} {mode}'][i] = mode
    device = torch.device(options.get('device', 'cpu'))
    clock = _clock(device, clock)
    saved, ratios, reference_times = _measure(
        spec, dict(plans, **switched), list(switched), batch_size, size,
        steps, warmup, True, progress_bar, options)
    release_free_memory()
    plain_time = statistics.median(t[0 if clock == 'wall' else 1]
                                   for t in reference_times)
    by_part = {m: saved[f'all {m}']['saved_bytes_by_part'] for m in modes}
    unit_bytes = [{m: by_part[m].get(f'unit{i}', 0) for m in modes}
                  for i in range(num_units)]
    unit_time = [{
        m: 0.0 if m == 'plain' else plain_time *
        (statistics.median(ratios[f'unit {i} {m}'][clock]) - 1)
        for m in modes
    } for i in range(num_units)]
    rest_bytes = sum(v for k, v in by_part['plain'].items()
                     if not k.startswith('unit'))
    info = dict(
        name=spec['name'],
        batch_size=batch_size,
        input_size=list(size),
        steps=steps,
        warmup=warmup,
        plain_step_time_s=plain_time,
        exact=exact)
    return CostModel(unit_bytes, unit_time, rest_bytes, plain_time, clock,
                     info)


def measure_plans(spec: dict,
                  plans: Sequence[Sequence[str]],
                  batch_size: int,
                  input_size: Union[int, Sequence[int]] = 32,
                  steps: int = 3,
                  warmup: int = 1,
                  progress_bar: bool = False,
                  **options) -> List[dict]:
    """Measured saved bytes and step times of plans, against all-plain.

    Every plan and an all-plain reference model run with the same weights
    and batch; each step of a plan is paired with a reference step taken
    next to it (:func:`~mmrevode.analysis.timing.ratios_to_reference`),
    and the ratios are the medians over the pairs. An all-plain plan among
    ``plans`` is measured like the others, against the reference: its
    ratio shows the noise of the measurement.

    Args:
        spec (dict): The model.
        plans (Sequence[Sequence[str]]): One mode per unit each.
        batch_size (int): Images per step.
        input_size (int | Sequence[int]): Image size or ``(height, width)``.
            Defaults to 32.
        steps (int): Timed steps of each plan. Defaults to 3.
        warmup (int): Untimed steps of each plan first. Defaults to 1.
        progress_bar (bool): Show a progress bar on stderr.
            Defaults to False.
        **options: The training step (see :func:`calibrate`).

    Returns:
        list[dict]: Per plan ``modes``, ``saved_bytes``,
        ``time_ratio_to_plain`` (wall time), ``cpu_time_ratio_to_plain``
        and the all-plain reference's median ``plain_step_time_s`` and
        ``plain_cpu_time_s``.
    """
    labels = {','.join(p): list(p) for p in plans}
    saved, ratios, reference_times = _measure(
        spec, labels, list(labels), batch_size, image_size(input_size),
        steps, warmup, False, progress_bar, options)
    release_free_memory()
    wall, cpu = zip(*reference_times)
    return [
        dict(
            modes=modes,
            saved_bytes=saved[label]['saved_bytes'],
            time_ratio_to_plain=statistics.median(ratios[label]['wall']),
            cpu_time_ratio_to_plain=statistics.median(ratios[label]['cpu']),
            plain_step_time_s=statistics.median(wall),
            plain_cpu_time_s=statistics.median(cpu))
        for label, modes in labels.items()
    ]
