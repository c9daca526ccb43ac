"""Checking that the backward rebuilt what the forward computed.

A :class:`RebuildProbe` handed to a unit
(:meth:`ReversibleSequence.probe_rebuild`) makes its next training forward
keep copies of the input pair of each run of reversible blocks (or of every
step's input pair, with ``every_step=True``); the backward then compares the
pairs it rebuilds with them. :class:`~mmrevode.engine.RebuildCheckHook` uses
it at run time, and the tests use it to show exact reversal step by step.
"""
from dataclasses import dataclass
from typing import Dict, List, Tuple

import torch
from torch import Tensor


@dataclass
class RebuildRecord:
    """The comparison of one rebuilt pair with the forward's.

    Attributes:
        step (int): Index of the step (in its run) whose input pair it is.
        equal (bool): Both tensors bitwise equal.
        max_error (float): Largest absolute difference.
        scale (float): Largest absolute value of the forward's pair.
    """
    step: int
    equal: bool
    max_error: float
    scale: float

    @property
    def relative_error(self) -> float:
        """``max_error / scale`` (``max_error`` when the pair is zero)."""
        return self.max_error / self.scale if self.scale > 0 else \
            self.max_error


class RunProbe:
    """What one run of reversible steps keeps and finds (see
    :class:`RebuildProbe`)."""

    def __init__(self, every_step: bool):
        self.every_step = every_step
        self.kept: Dict[int, Tuple[Tensor, Tensor]] = {}
        self.records: List[RebuildRecord] = []

    def wants(self, step: int) -> bool:
        """Whether the input pair of ``step`` is kept and compared."""
        return self.every_step or step == 0

    def keep(self, step: int, a: Tensor, b: Tensor):
        """Keep a copy of the forward's input pair of ``step``."""
        self.kept[step] = (a.detach().clone(), b.detach().clone())

    @torch.no_grad()
    def compare(self, step: int, a: Tensor, b: Tensor):
        """Compare the rebuilt input pair of ``step`` with the kept one."""
        kept = self.kept.pop(step, None)
        if kept is None:
            return
        errors, scales, equal = [], [], True
        for old, new in zip(kept, (a, b)):
            equal = equal and torch.equal(old, new)
            errors.append((new.double() - old.double()).abs().max())
            scales.append(old.abs().max().double())
        self.records.append(
            RebuildRecord(step, equal,
                          torch.stack(errors).max().item(),
                          torch.stack(scales).max().item()))


class RebuildProbe:
    """Keeps pairs of a unit's forward and compares the rebuilt ones.

    Args:
        every_step (bool): Keep and compare every step's input pair, not
            only each run's first. Costs a copy of every state; for tests.
            Defaults to False.

    Attributes:
        runs (list[RunProbe]): One per run of reversible blocks that the
            forward went through.
        exact (bool | None): Whether the unit ran in exact mode.
    """

    def __init__(self, every_step: bool = False):
        self.every_step = every_step
        self.runs: List[RunProbe] = []
        self.exact = None

    def new_run(self) -> RunProbe:
        """The probe of the next run of reversible blocks."""
        run = RunProbe(self.every_step)
        self.runs.append(run)
        return run

    @property
    def records(self) -> List[RebuildRecord]:
        """The comparisons made so far, of every run."""
        return [record for run in self.runs for record in run.records]

    @property
    def pending(self) -> int:
        """Pairs kept but not compared yet (a backward that has not run)."""
        return sum(len(run.kept) for run in self.runs)
