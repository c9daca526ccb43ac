"""Measurements of the reversible networks.

The library behind ``tools/analysis_tools/`` (each tool is a command line
over it: arguments, a table, JSON and a figure):

=====================  =======================================================
module                 what it measures
=====================  =======================================================
:mod:`.models`         builds a model from a spec ``'TYPE[:ARCH]'`` or config
:mod:`.memory`         saved-for-backward bytes, peak memory, fresh processes
:mod:`.benchmark`      memory and time of paired training steps per mode
:mod:`.reconstruction` error of rebuilding each unit's input from its output
:mod:`.stability`      state and gradient norms along the depth, spectra
:mod:`.amp`            gradient drift under mixed precision
:mod:`.planner`        per-unit modes that fit a memory budget fastest
:mod:`.peers`          one unit in mmrevode, MemCNN and RevLib side by side
=====================  =======================================================

Example:
    >>> from mmrevode.analysis import build_backbone, unit_errors
    >>> import torch
    >>> backbone = build_backbone("MidpointNet:{'blocks': [2], 'widths': [8]}")
    >>> errors = unit_errors(backbone, torch.randn(2, 3, 8, 8))
    >>> len(errors), errors[0] < 1e-5
    (1, True)
"""
from .amp import AMP_METRICS, amp_drift, worst_amp_drift
from .benchmark import (RECORD_FIELDS, TrainStep, backbone_parts,
                        benchmark_model, machine_info, memory_model,
                        paired_ratio, paired_step_times, ratios_to_reference,
                        run_benchmark, time_model, train_steps)
from .memory import (MemoryMeter, configure_malloc, count_saved_bytes,
                     release_free_memory, run_in_fresh_process)
from .models import (MODES, TrainingModel, backbone_registry,
                     build_backbone, build_training_models,
                     load_backbone_checkpoint, model_spec, parse_spec,
                     image_size, quiet_init_weights, set_mode, sweep_specs)
from .planner import (BudgetError, CostModel, calibrate, cfg_option,
                      format_bytes, measure_plans, parse_bytes)
from .reconstruction import (RECONSTRUCTION_FIELDS, PatternData,
                             measure_reconstruction, run_reconstruction,
                             unit_errors)
from .stability import (analyse_stability, depth_profile, jacobian_spectrum,
                        right_hand_side, walk_units)

__all__ = [
    'BudgetError', 'CostModel', 'calibrate', 'cfg_option', 'format_bytes',
    'image_size', 'measure_plans', 'paired_ratio', 'paired_step_times',
    'parse_bytes', 'ratios_to_reference', 'train_steps',
    'AMP_METRICS', 'MODES', 'RECONSTRUCTION_FIELDS',
    'RECORD_FIELDS',
    'MemoryMeter', 'PatternData', 'TrainStep', 'TrainingModel',
    'amp_drift', 'analyse_stability', 'backbone_parts', 'backbone_registry',
    'benchmark_model', 'build_backbone', 'build_training_models',
    'configure_malloc', 'count_saved_bytes', 'depth_profile',
    'jacobian_spectrum', 'load_backbone_checkpoint', 'machine_info',
    'measure_reconstruction', 'memory_model', 'model_spec', 'parse_spec',
    'quiet_init_weights', 'release_free_memory', 'right_hand_side',
    'run_benchmark', 'run_in_fresh_process', 'run_reconstruction',
    'set_mode', 'sweep_specs', 'time_model', 'unit_errors',
    'walk_units', 'worst_amp_drift'
]
