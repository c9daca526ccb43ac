"""Checking at run time that the backward rebuilt what the forward had.

The reversible backward rebuilds each unit's states from its outputs, which
is right only if every step function ``F`` is recomputed exactly as in the
forward. A kernel that is not bitwise repeatable (some cuDNN algorithms) or
a random layer without replay breaks that silently: the gradients are then
those of states the forward never had. :class:`RebuildCheckHook` samples it.
"""
import warnings
from typing import List, Optional, Tuple

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS
from torch import nn

from mmrevode.models.reversible import RebuildProbe, ReversibleSequence


class RebuildMismatchError(RuntimeError):
    """An exact unit's backward rebuilt a pair that differs from the
    forward's."""


def reversible_units(model: nn.Module) -> List[Tuple[str, ReversibleSequence]]:
    """``(name, unit)`` of every unit of ``model`` that has a reversible
    block (and so rebuilds states in its backward)."""
    if is_model_wrapper(model):
        model = model.module
    return [(name, module) for name, module in model.named_modules()
            if isinstance(module, ReversibleSequence)
            and 'reversible' in module.block_modes]


@HOOKS.register_module()
class RebuildCheckHook(Hook):
    """Every ``interval`` training iterations, check one unit's rebuild.

    The unit (taken round robin over the model's reversible units) keeps a
    copy of its input pair in the forward, and its backward compares the
    pair it rebuilds with it (:class:`~mmrevode.models.reversible.
    RebuildProbe`). The largest difference relative to the pair's largest
    value is logged as the scalar ``train/rebuild_error``.

    - In exact mode (``exact=True``) the rebuilt pair must equal the
      forward's bit for bit; any difference raises
      :class:`RebuildMismatchError` naming the unit and the likely causes.
    - In floating point, a relative error above ``tolerance`` is a warning
      with the figure (float32 rebuilds drift by about 1e-6).

    Models without reversible units are left alone. A checked iteration
    copies one unit's input pair and rebuilds one more step; at the default
    interval that costs well under 1 % of training time (docs/engine.md).

    Args:
        interval (int): Check every ``interval`` training iterations.
            Defaults to 10.
        tolerance (float): Relative error above which a floating-point
            unit warns. Defaults to 1e-4.
    """
    priority = 'NORMAL'

    def __init__(self, interval: int = 10, tolerance: float = 1e-4):
        if not isinstance(interval, int) or interval < 1:
            raise ValueError('RebuildCheckHook: interval must be a positive '
                             f'int, got {interval!r}.')
        if not tolerance >= 0:
            raise ValueError('RebuildCheckHook: tolerance must be >= 0, '
                             f'got {tolerance!r}.')
        self.interval = interval
        self.tolerance = tolerance
        self._next_unit = 0
        self._probe: Optional[Tuple[str, ReversibleSequence,
                                    RebuildProbe]] = None

    def before_train_iter(self, runner, batch_idx: int, data_batch=None):
        if not self.every_n_train_iters(runner, self.interval):
            return
        units = reversible_units(runner.model)
        if not units:
            return
        name, unit = units[self._next_unit % len(units)]
        self._next_unit += 1
        probe = RebuildProbe()
        unit.probe_rebuild(probe)
        self._probe = (name, unit, probe)

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None):
        if self._probe is None:
            return
        name, unit, probe = self._probe
        self._probe = None
        unit.probe_rebuild(None)
        error = self.check(name, probe)
        if error is not None:
            runner.message_hub.update_scalar('train/rebuild_error', error)

    def check(self, name: str, probe: RebuildProbe) -> Optional[float]:
        """The relative error of the probe's comparisons (None if the unit
        rebuilt nothing); raises or warns as described above."""
        records = probe.records
        if not records:
            return None
        error = max(record.relative_error for record in records)
        absolute = max(record.max_error for record in records)
        if probe.exact and not all(record.equal for record in records):
            raise RebuildMismatchError(
                f'{name} (exact=True): the backward rebuilt an input pair '
                f'that differs from the forward\'s (max difference '
                f'{absolute:.3g}, {error:.3g} relative), so its step '
                'functions were not recomputed bit for bit: a kernel that '
                'is not deterministic (on a GPU set '
                'torch.backends.cudnn.deterministic=True and '
                'cudnn_benchmark=False) or a random layer whose generator '
                'state is not replayed (build the unit with '
                'preserve_rng_state=True).')
        if not probe.exact and error > self.tolerance:
            warnings.warn(
                f'{name}: the backward rebuilt its input pair with a relative '
                f'error of {error:.3g} (max difference {absolute:.3g}), above '
                f'the tolerance {self.tolerance:g}; its gradients are those '
                'of slightly different states. exact=True rebuilds them '
                'bit for bit.')
        return error
