"""Measurements of the reversible networks.

The library behind ``tools/analysis_tools/`` (each tool is a command line
over it: arguments, a table, JSON and a figure):

=====================  =======================================================
module                 what it measures
=====================  =======================================================
:mod:`.models`         builds a model from a spec ``'TYPE[:ARCH]'`` or config
:mod:`.training`       the training step every measurement runs
:mod:`.timing`         the clock and the loop of paired timed rounds
:mod:`.memory`         saved-for-backward bytes, peak memory, fresh processes
:mod:`.benchmark`      memory and time of paired training steps per mode
:mod:`.reconstruction` error of rebuilding each unit's input from its output
:mod:`.stability`      state and gradient norms along the depth, spectra
:mod:`.amp`            gradient drift under mixed precision
:mod:`.planner`        per-unit modes that fit a memory budget fastest
:mod:`.peers`          one unit in mmrevode, MemCNN and RevLib side by side
:mod:`.cli`            the tools' shared options, tables, sizes and figures
=====================  =======================================================

The package exports what the tools and a user call; the parts each module
is built from are imported from that module.

Example:
    >>> from mmrevode.analysis import build_backbone, unit_errors
    >>> import torch
    >>> backbone = build_backbone("MidpointNet:{'blocks': [2], 'widths': [8]}")
    >>> errors = unit_errors(backbone, torch.randn(2, 3, 8, 8))
    >>> len(errors), errors[0] < 1e-5
    (1, True)
"""
from .amp import AMP_METRICS, amp_drift, worst_amp_drift
from .benchmark import (RECORD_FIELDS, benchmark_model, machine_info,
                        run_benchmark)
from .cli import format_bytes, parse_bytes
from .memory import MemoryMeter, count_saved_bytes
from .models import MODES, build_backbone, model_spec, parse_spec, set_mode
from .peers import compare_peers
from .planner import (BudgetError, CostModel, calibrate, cfg_option,
                      measure_plans)
from .reconstruction import (RECONSTRUCTION_FIELDS, measure_reconstruction,
                             run_reconstruction, unit_errors)
from .stability import analyse_stability

__all__ = [
    'AMP_METRICS', 'MODES', 'RECONSTRUCTION_FIELDS', 'RECORD_FIELDS',
    'BudgetError', 'CostModel', 'MemoryMeter', 'amp_drift',
    'analyse_stability', 'benchmark_model', 'build_backbone', 'calibrate',
    'cfg_option', 'compare_peers', 'count_saved_bytes', 'format_bytes',
    'machine_info', 'measure_plans', 'measure_reconstruction', 'model_spec',
    'parse_bytes', 'parse_spec', 'run_benchmark', 'run_reconstruction',
    'set_mode', 'unit_errors', 'worst_amp_drift'
]
