"""The reversible engine: shift steps, their autograd function, units."""
from .block import ReversibleBlock
from .fixed_point import LIMIT, QUANTUM, FixedPointRangeError
from .function import (ReversibleFunction, ReversibleOptions,
                       collect_parameters, frozen_running_stats)
from .modes import EXECUTION_MODES, Mode, parse_modes
from .probe import RebuildProbe, RebuildRecord
from .sequence import ReversibleSequence
from .shift_step import ShiftStep, run_steps, shift, unshift

__all__ = [
    'EXECUTION_MODES', 'FixedPointRangeError', 'LIMIT', 'Mode', 'QUANTUM',
    'RebuildProbe', 'RebuildRecord', 'ReversibleBlock', 'ReversibleFunction',
    'ReversibleOptions', 'ReversibleSequence', 'ShiftStep',
    'collect_parameters', 'frozen_running_stats', 'parse_modes', 'run_steps',
    'shift', 'unshift'
]
