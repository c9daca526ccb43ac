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
from typing import List, Sequence, Union

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
