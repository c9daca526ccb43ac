"""Execution modes of a unit: how its training step stores activations.

=================  ==========================================================
mode               what the backward needs from the forward
=================  ==========================================================
``'reversible'``   only the final pair of each run of reversible blocks; the
                   backward rebuilds the rest (:class:`ReversibleFunction`)
``'plain'``        every activation (ordinary autograd)
``'checkpoint'``   each block's input; ``torch.utils.checkpoint`` recomputes
                   the block in the backward
=================  ==========================================================

All modes give the same outputs, gradients, batch-norm statistics and
``state_dict``; they differ in memory and time only.
"""
import warnings
from typing import List, Optional, Sequence, Union

EXECUTION_MODES = ('reversible', 'plain', 'checkpoint')

Mode = Union[str, Sequence[str]]


def parse_modes(mode: Mode,
                num_parts: int,
                owner: str,
                part: str = 'unit',
                allowed: Sequence[str] = EXECUTION_MODES) -> List[str]:
    """One mode per part from a mode or a list of modes.

    Args:
        mode (str | Sequence[str]): A mode for every part, or a list with
            one mode per part.
        num_parts (int): Number of parts (units, blocks).
        owner (str): Name of the module, for the error messages.
        part (str): What a part is, for the error messages.
            Defaults to ``'unit'``.
        allowed (Sequence[str]): The modes allowed.
            Defaults to :data:`EXECUTION_MODES`.

    Returns:
        list[str]: ``num_parts`` modes.
    """
    if isinstance(mode, str):
        modes = [mode] * num_parts
    elif isinstance(mode, (list, tuple)):
        modes = list(mode)
        if len(modes) != num_parts:
            raise ValueError(
                f'{owner}: mode must be one of {tuple(allowed)} or a list '
                f'with one of them per {part} ({num_parts} {part}s), got a '
                f'list of {len(modes)}: {modes!r}.')
    else:
        raise TypeError(f'{owner}: mode must be one of {tuple(allowed)} or '
                        f'a list with one of them per {part} ({num_parts} '
                        f'{part}s), got {type(mode).__name__} {mode!r}.')
    for index, value in enumerate(modes):
        if value not in allowed:
            where = '' if isinstance(mode, str) else f' ({part} {index})'
            raise ValueError(f'{owner}: mode must be one of {tuple(allowed)}'
                             f' or a list of them; got {value!r}{where}.')
    return modes


def legacy_mode(mode: Mode, reversible: Optional[bool],
                with_cp: Optional[bool], owner: str,
                default: str = 'reversible') -> Mode:
    """``mode``, or the mode named by the deprecated ``reversible`` and
    ``with_cp`` arguments.

    ``reversible=True`` is ``'reversible'`` (whatever ``with_cp``, as it
    was), ``reversible=False`` is ``'plain'``, and with ``with_cp=True``
    ``'checkpoint'``. Giving either argument warns; giving one together
    with a ``mode`` other than ``default`` is an error.

    Args:
        mode (str | Sequence[str]): The ``mode`` argument.
        reversible (bool, optional): The deprecated argument, or None.
        with_cp (bool, optional): The deprecated argument, or None.
        owner (str): Name of the module, for the messages.
        default (str): The default of ``mode``. Defaults to
            ``'reversible'``.
    """
    if reversible is None and with_cp is None:
        return mode
    given = ', '.join(f'{key}={value!r}' for key, value in (
        ('reversible', reversible), ('with_cp', with_cp))
                      if value is not None)
    if not (isinstance(mode, str) and mode == default):
        raise ValueError(f'{owner}: give either mode or the deprecated '
                         f'{given}, not both (mode={mode!r}).')
    if reversible is None:
        reversible = default == 'reversible'
    if reversible:
        new = 'reversible'
    else:
        new = 'checkpoint' if with_cp else 'plain'
    warnings.warn(
        f'{owner}: {given} is deprecated; use mode={new!r} (one of '
        f"{EXECUTION_MODES}, or a list with one per unit).",
        DeprecationWarning,
        stacklevel=3)
    return new
