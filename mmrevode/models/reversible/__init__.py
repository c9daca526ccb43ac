"""The reversible engine: shift steps, their autograd function, units."""
from .block import ReversibleBlock
from .function import (ReversibleFunction, collect_parameters,
                       frozen_running_stats)
from .sequence import ReversibleSequence
from .shift_step import ShiftStep, run_steps, shift, unshift

__all__ = [
    'ReversibleBlock', 'ReversibleFunction', 'ReversibleSequence',
    'run_steps',
    'ShiftStep', 'collect_parameters', 'frozen_running_stats', 'shift',
    'unshift'
]
