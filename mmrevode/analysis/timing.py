"""Timing of steps: one clock and one loop of paired rounds.

Every time the measurements report is taken by :func:`timed` (wall time and
the process's CPU time, ``time.process_time``, after synchronising a GPU)
inside :func:`paired_step_times`, which runs one step of every run per round
in alternating order, so that the steps compared are taken at nearly the
same time; a ratio is the median over rounds of the per-round ratio
(:func:`paired_ratio`). On a machine shared with other work, and with one
thread, the CPU time is much steadier than the wall time; with several
threads it includes their spin-waiting.
"""
import statistics
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch

#: A step to time: called with no arguments, returns its wall and CPU time
#: (:func:`timed`).
Run = Callable[[], Tuple[float, float]]


def timed(function: Callable[[], Any],
          device: Optional[torch.device] = None) -> Tuple[float, float]:
    """Call ``function()``; return its wall time and the process's CPU time.

    Args:
        function (callable): What to time.
        device (torch.device, optional): On a CUDA device the clock starts
            and stops after synchronising it. Defaults to None (no sync).
    """
    sync = device is not None and torch.device(device).type == 'cuda'
    if sync:
        torch.cuda.synchronize(device)
    start, cpu_start = time.perf_counter(), time.process_time()
    function()
    if sync:
        torch.cuda.synchronize(device)
    return time.perf_counter() - start, time.process_time() - cpu_start


def paired_step_times(
        runs: Dict[str, Run],
        steps: int,
        warmup: int = 0,
        progress: Optional[Callable[[], None]] = None,
        first_round: int = 0
) -> Tuple[Dict[str, List[float]], Dict[str, List[float]]]:
    """Time rounds of one step of every run, in alternating order.

    Round ``i`` runs the steps in the order of ``runs`` when ``i`` is even
    and in the reverse order when it is odd.

    Args:
        runs (dict[str, callable]): Steps that time themselves (a
            :class:`~mmrevode.analysis.training.TrainStep`, or a function
            returning :func:`timed`).
        steps (int): Timed rounds.
        warmup (int): Untimed rounds first. Defaults to 0.
        progress (callable, optional): Called after every step.
        first_round (int): Index of the first round (sets the order of the
            first). Defaults to 0.

    Returns:
        tuple[dict, dict]: The wall times and the CPU times of the timed
        rounds, a list per run.
    """
    times = {name: [] for name in runs}
    cpu_times = {name: [] for name in runs}
    order = list(runs)
    for i in range(first_round, first_round + warmup + steps):
        for name in (order if i % 2 == 0 else order[::-1]):
            wall, cpu = runs[name]()
            if i >= first_round + warmup:
                times[name].append(wall)
                cpu_times[name].append(cpu)
            if progress:
                progress()
    return times, cpu_times


def paired_ratio(values: Sequence[float],
                 references: Sequence[float]) -> Optional[float]:
    """Median over rounds of ``value / reference``."""
    ratios = [v / r for v, r in zip(values, references) if r > 0]
    return statistics.median(ratios) if ratios else None


def ratios_to_reference(runs: Dict[str, Run],
                        reference: Run,
                        steps: int,
                        progress: Optional[Callable[[], None]] = None
                        ) -> Dict[str, Dict[str, List[float]]]:
    """Time each run next to a step of ``reference``, ``steps`` times.

    With many runs a round of all of them spans minutes, over which the
    load of a shared machine changes; here every step of a run is paired
    with a reference step taken just before or after it (a round of
    :func:`paired_step_times` of the two, in alternating order), so each
    ratio compares neighbours.

    Returns:
        dict: Per run ``wall`` and ``cpu``: the ratios of its steps' wall
        and CPU times to their neighbouring reference steps (the wall
        ratio where the CPU clock read 0).
    """
    ratios = {name: dict(wall=[], cpu=[]) for name in runs}
    for i in range(steps):
        for j, (name, run) in enumerate(runs.items()):
            times, cpu_times = paired_step_times(
                dict(reference=reference, run=run), 1, first_round=i + j)
            wall, ref_wall = times['run'][0], times['reference'][0]
            cpu, ref_cpu = cpu_times['run'][0], cpu_times['reference'][0]
            ratios[name]['wall'].append(wall / ref_wall)
            ratios[name]['cpu'].append(cpu / ref_cpu if ref_cpu > 0 else
                                       wall / ref_wall)
            if progress:
                progress()
    return ratios
