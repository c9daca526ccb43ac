"""Checks of the training state a checkpoint restores on ``--resume``.

MMEngine restores a parameter scheduler with ``self.__dict__.update(state)``
and an optimizer with ``Optimizer.load_state_dict``: a checkpoint's entries
there replace whatever the config built, without a check. A file can then
make a learning-rate scheduler drive the weight decay, hide a scheduler's
``step`` method behind a number, or turn on ``maximize``. Before the runner
uses them, :func:`check_resume_state` compares them with the objects the
config built: the same attributes, of the same kinds, driving the same
parameter over the same range; the same optimizer flags.
"""
import math
from collections.abc import Mapping, Sequence
from typing import Any, List

import torch

from .checkpoint import CheckpointError


class ResumeStateError(CheckpointError):
    """A checkpoint's optimizer or scheduler state does not fit the run."""


#: Scheduler attributes that say what it drives: they must be equal.
SCHEDULER_IDENTITY = ('param_name', 'by_epoch')


def _kind(value: Any) -> str:
    if value is None:
        return 'none'
    if isinstance(value, bool):
        return 'bool'
    if isinstance(value, (int, float)):
        return 'number'
    if isinstance(value, str):
        return 'str'
    if isinstance(value, torch.Tensor):
        return 'tensor'
    if isinstance(value, Mapping):
        return 'mapping'
    if isinstance(value, Sequence):
        return 'sequence'
    return type(value).__name__


def _same_kind(built: Any, loaded: Any) -> bool:
    # None stands for a number not yet computed (e.g. a last value)
    return _kind(built) == _kind(loaded) or 'none' in (_kind(built),
                                                       _kind(loaded)) and \
        'number' in (_kind(built), _kind(loaded))


def _schedulers(schedulers: Any) -> List[Any]:
    if isinstance(schedulers, Mapping):
        if not all(isinstance(v, Sequence) and not isinstance(v, str)
                   for v in schedulers.values()):
            # one scheduler's config, not built yet (a test run)
            return [schedulers]
        return [s for name in sorted(schedulers) for s in schedulers[name]]
    return list(schedulers or [])


def _states(states: Any, schedulers: Any) -> List[Any]:
    if isinstance(schedulers, Mapping):
        if not isinstance(states, Mapping) or set(states) != set(schedulers):
            raise ResumeStateError('its parameter schedulers are not those '
                                   f'of the config ({sorted(schedulers)})')
        return [s for name in sorted(schedulers) for s in states[name]]
    if not isinstance(states, Sequence) or isinstance(states, str):
        raise ResumeStateError('its parameter schedulers are not a list')
    return list(states)


def check_scheduler_states(schedulers: Any, states: Any) -> None:
    """Check scheduler states against the schedulers the config built.

    Raises:
        ResumeStateError: Another number of schedulers, an attribute the
            scheduler does not have or of another kind, or a scheduler that
            drives another parameter or counts otherwise
            (:data:`SCHEDULER_IDENTITY`).
    """
    built = _schedulers(schedulers)
    loaded = _states(states, schedulers)
    if len(built) != len(loaded):
        raise ResumeStateError(
            f'it holds {len(loaded)} parameter schedulers, the config builds '
            f'{len(built)}')
    for i, (scheduler, state) in enumerate(zip(built, loaded)):
        name = f'parameter scheduler {i} ({type(scheduler).__name__})'
        if not isinstance(state, Mapping):
            raise ResumeStateError(f'the state of its {name} is not a dict')
        own = {k: v for k, v in vars(scheduler).items() if k != 'optimizer'}
        unknown = sorted(map(str, set(state) - set(own)))
        if unknown:
            raise ResumeStateError(
                f'the state of its {name} sets {unknown}, which that '
                'scheduler does not have')
        for key, value in state.items():
            if key in SCHEDULER_IDENTITY and value != own[key]:
                raise ResumeStateError(
                    f'its {name} has {key}={value!r:.40}, the config '
                    f'{own[key]!r:.40}: it schedules something else')
            if not _same_kind(own[key], value):
                raise ResumeStateError(
                    f'its {name} has {key} of kind {_kind(value)}, the '
                    f'scheduler {_kind(own[key])}')


def _finite_numbers(value: Any) -> bool:
    if isinstance(value, bool):
        return True
    if isinstance(value, (int, float)):
        return math.isfinite(value)
    if isinstance(value, torch.Tensor):
        return value.numel() == 1 and bool(torch.isfinite(value).all())
    if isinstance(value, (list, tuple)):
        return all(_finite_numbers(v) for v in value)
    return False


def _keys(group: Any, built: Mapping) -> str:
    if not isinstance(group, Mapping):
        return f'a {type(group).__name__}, not a dict'
    return ', '.join(sorted(map(str, set(group) - set(built))))


def check_optimizer_state(optimizer: torch.optim.Optimizer,
                          state: Any) -> None:
    """Check an optimizer state against the optimizer the config built.

    The same parameter groups with the same keys; flags (bools, strings,
    None) equal to the config's; hyper-parameters finite numbers; per-
    parameter state only for parameters of the optimizer, with tensors that
    are scalars or of the parameter's shape.

    Raises:
        ResumeStateError: Where the state does not fit.
    """
    own = optimizer.state_dict()
    if not isinstance(state, Mapping) or not isinstance(
            state.get('param_groups'), list) or not isinstance(
                state.get('state'), Mapping):
        raise ResumeStateError('its optimizer state is not a dict of '
                               'param_groups and state')
    groups = state['param_groups']
    if len(groups) != len(own['param_groups']):
        raise ResumeStateError(
            f'its optimizer has {len(groups)} parameter groups, the config '
            f"{len(own['param_groups'])}")
    shapes = {}
    for i, (group, built) in enumerate(zip(groups, own['param_groups'])):
        # keys a newer torch added are filled in with their defaults
        if not isinstance(group, Mapping) or not set(group) <= set(built):
            raise ResumeStateError(
                f'its optimizer parameter group {i} has keys that '
                f'{type(optimizer).__name__} does not have '
                f'({_keys(group, built)})')
        if group['params'] != built['params']:
            raise ResumeStateError(
                f'its optimizer parameter group {i} holds other parameters')
        for key, value in group.items():
            if key == 'params':
                continue
            expected = built[key]
            if isinstance(expected, (bool, str)) or expected is None:
                if value != expected or type(value) is not type(expected):
                    raise ResumeStateError(
                        f'its optimizer has {key}={value!r:.40}, the config '
                        f'{expected!r:.40}')
            elif not _finite_numbers(value):
                raise ResumeStateError(
                    f'its optimizer has {key}={value!r:.40}, not a finite '
                    'number')
        for index, param in zip(
                built['params'],
                optimizer.param_groups[i]['params']):
            shapes[index] = param.shape
    for index, entries in state['state'].items():
        if index not in shapes or not isinstance(entries, Mapping):
            raise ResumeStateError(
                f'its optimizer state names parameter {index!r:.20}, which '
                'the optimizer does not have')
        for key, value in entries.items():
            if isinstance(value, torch.Tensor) and value.dim() and \
                    value.shape != shapes[index]:
                raise ResumeStateError(
                    f'its optimizer state {key} of parameter {index} has the '
                    f'shape {tuple(value.shape)}, the parameter '
                    f'{tuple(shapes[index])}')


def check_resume_state(runner, checkpoint: Mapping, path: str) -> None:
    """Check the optimizer and scheduler states of ``checkpoint`` against
    what ``runner`` built (those it has built; a test run builds none).

    Raises:
        ResumeStateError: One line naming ``path`` and what does not fit.
    """
    from mmengine.optim import OptimWrapper, OptimWrapperDict
    try:
        wrapper = getattr(runner, 'optim_wrapper', None)
        if 'optimizer' in checkpoint and isinstance(wrapper, OptimWrapper) \
                and not isinstance(wrapper, OptimWrapperDict):
            check_optimizer_state(wrapper.optimizer, checkpoint['optimizer'])
        schedulers = getattr(runner, 'param_schedulers', None)
        if 'param_schedulers' in checkpoint and schedulers and all(
                hasattr(s, 'step') for s in _schedulers(schedulers)):
            check_scheduler_states(schedulers,
                                   checkpoint['param_schedulers'])
    except ResumeStateError as e:
        raise ResumeStateError(
            f'The checkpoint {path} cannot be resumed: {e}. Resume from a '
            'checkpoint of this config, or start from its weights with '
            'load_from.') from None
