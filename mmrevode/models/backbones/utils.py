"""Helpers shared by the backbones: out_indices, frozen stages, norm_eval."""
from typing import Iterable, Sequence, Tuple, Union

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


def parse_out_indices(out_indices: Union[int, Sequence[int]],
                      num_stages: int,
                      stage_name: str = 'stage') -> Tuple[int, ...]:
    """Check ``out_indices`` and make them non-negative.

    Args:
        out_indices (int | Sequence[int]): Indices of the returned stages;
            negative values count from the end.
        num_stages (int): Stages (units) of the network.
        stage_name (str): What a stage is called in error messages.
            Defaults to ``'stage'``.

    Returns:
        tuple[int]: The indices in ``[0, num_stages)``.
    """
    if isinstance(out_indices, int):
        out_indices = [out_indices]
    if not isinstance(out_indices, Sequence) or not out_indices:
        raise TypeError('out_indices must be an int or a non-empty '
                        f'sequence of ints, got {out_indices!r}.')
    result = []
    for index in out_indices:
        if not isinstance(index, int) or not \
                -num_stages <= index < num_stages:
            raise ValueError(f'out_indices: {index!r} is not a {stage_name} '
                             f'index (the network has {num_stages} '
                             f'{stage_name}s).')
        result.append(index % num_stages)
    return tuple(result)


def freeze(backbone: nn.Module,
           frozen_modules: Iterable[nn.Module],
           norm_eval: bool = False) -> nn.Module:
    """Keep ``frozen_stages`` and ``norm_eval`` in force, as MMPretrain's
    ``ResNet`` does after ``train()``.

    Args:
        backbone (nn.Module): The backbone.
        frozen_modules (Iterable[nn.Module]): Modules to put in eval mode
            and whose parameters get no gradients.
        norm_eval (bool): Also put every batch norm of the backbone in eval
            mode. Defaults to False.

    Returns:
        nn.Module: The backbone.
    """
    for module in frozen_modules:
        module.eval()
        for param in module.parameters():
            param.requires_grad = False
    if norm_eval:
        for m in backbone.modules():
            if isinstance(m, _BatchNorm):
                m.eval()
    return backbone
