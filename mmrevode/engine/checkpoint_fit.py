"""Whether a checkpoint's weights fit a model: names, shapes, definitions
and finite values."""
import re
from typing import Dict, List, Optional, Sequence

import torch

from .checkpoint import CheckpointError
from .definition import DEFINITION_KEY, definition_error


class CheckpointMismatchError(CheckpointError):
    """A checkpoint's weights do not fit the model they are loaded into."""


def first_non_finite(state_dict: Dict[str, torch.Tensor]) -> Optional[str]:
    """The name of the first floating or complex tensor with a NaN or
    infinity."""
    for name, value in state_dict.items():
        if isinstance(value, torch.Tensor) and (
                value.is_floating_point() or value.is_complex()) \
                and not bool(torch.isfinite(value).all()):
            return name
    return None


def checkpoint_mismatches(model: torch.nn.Module,
                          checkpoint: dict,
                          limit: int = 5,
                          optional: Sequence[str] = (),
                          check_definitions: bool = True) -> List[str]:
    """What keeps a checkpoint's weights from fitting ``model``.

    Compares ``checkpoint['state_dict']`` (or the checkpoint itself), with
    a ``module.`` prefix stripped as MMEngine does, against
    ``model.state_dict()``. A backbone whose recorded definition (step
    size, arch, ...) differs from the network built, or which records
    none, is reported first and alone, with the message its loading would
    raise (:func:`~mmrevode.engine.definition.definition_error`): a
    different network explains all other differences.

    Args:
        model (nn.Module): The model to load into.
        checkpoint (dict): The loaded checkpoint.
        limit (int): How many keys to name per kind of mismatch.
            Defaults to 5.
        optional (Sequence[str]): Prefixes of keys that may be missing or
            unexpected (e.g. ``'out_norms.'`` for a backbone that returns
            other outputs). Defaults to ().
        check_definitions (bool): Compare the backbones' definitions.
            Defaults to True.

    Returns:
        list[str]: One phrase per kind of problem (a different network, no
        weights, missing, unexpected or different-shape keys, non-finite
        values); empty if the weights fit.
    """
    state = checkpoint.get('state_dict', checkpoint) \
        if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not any(
            isinstance(v, torch.Tensor) for v in state.values()):
        return ['it holds no weights']
    if not all(isinstance(k, str) for k in state):
        return ['its weights are named by something else than strings']
    state = {re.sub(r'^module\.', '', k): v for k, v in state.items()}
    optional = tuple(optional)
    if check_definitions:
        error = definition_error(model, state)
        if error is not None:
            return [str(error)]
    expected = model.state_dict()
    # definitions are compared above (or on purpose not at all)
    defined = {k for k in expected if k.endswith(DEFINITION_KEY)}
    problems = []
    missing = [
        k for k in expected
        if k not in state and k not in defined and not k.startswith(optional)
    ]
    unexpected = [
        k for k in state if k not in expected and not k.startswith(optional)
    ]
    # torch skips a value that is not a tensor and MMEngine only logs it:
    # the model would keep its initial weights there
    not_tensors = [
        f'{k} ({type(state[k]).__name__})' for k in expected
        if k in state and not isinstance(state[k], torch.Tensor)
    ]
    shapes = [
        f'{k} {tuple(state[k].shape)} vs {tuple(v.shape)} in the model'
        for k, v in expected.items()
        if k not in defined and isinstance(v, torch.Tensor) and isinstance(
            state.get(k), torch.Tensor) and state[k].shape != v.shape
    ]
    for label, keys in (('missing keys', missing),
                        ('values that are not tensors', not_tensors),
                        ('unexpected keys', unexpected),
                        ('different shapes', shapes)):
        if keys:
            problems.append(f'{len(keys)} {label} ({_listing(keys, limit)})')
    bad = first_non_finite(state)
    if bad is not None:
        problems.append(f'non-finite values in {bad} (a diverged run)')
    return problems


def check_checkpoint_fits(model: torch.nn.Module,
                          checkpoint: dict,
                          path: str,
                          config: str = 'the config',
                          hint: str = '',
                          optional: Sequence[str] = (),
                          check_definitions: bool = True) -> None:
    """Raise :class:`CheckpointMismatchError` naming ``path``, ``config``
    and the :func:`checkpoint_mismatches` unless the weights fit ``model``.

    A backbone whose definition differs, or is not recorded, raises
    :class:`~mmrevode.engine.NetworkMismatchError` (or
    :class:`~mmrevode.engine.MissingDefinitionError`) first, with the
    message loading would give.
    """
    if check_definitions and isinstance(checkpoint, dict):
        state = checkpoint.get('state_dict', checkpoint)
        if isinstance(state, dict):
            error = definition_error(
                model, {re.sub(r'^module\.', '', k): v
                        for k, v in state.items()}, path)
            if error is not None:
                raise error
    problems = checkpoint_mismatches(
        model, checkpoint, optional=optional, check_definitions=False)
    if problems:
        raise CheckpointMismatchError(
            f'The checkpoint {path} does not fit the model of {config}: ' +
            '; '.join(problems) + '.' + hint)


def _listing(items: List[str], limit: int = 5) -> str:
    shown = ', '.join(items[:limit])
    return shown + (f' and {len(items) - limit} more'
                    if len(items) > limit else '')
