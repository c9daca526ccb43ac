"""Models for the measurements: one spec format, one way to build them.

A model is named by a spec ``'TYPE[:ARCH]'``: an MMPretrain backbone type
and its arch, which is a preset name (``'HamiltonianNet:110'``,
``'HamiltonianNet:det-38'``), a depth for backbones that take one
(``'CifarResNet:56'``) or a dict literal
(``"HamiltonianNet:{'blocks': [4, 4, 4], 'widths': [32, 64, 128]}"``).
Without an arch the backbone's default is used. :func:`build_backbone` also
takes a config file, whose ``model.backbone`` it builds.
"""
import ast
import copy
import inspect
import logging
import os.path as osp
from typing import List, Optional, Sequence, Tuple, Union

import torch
from mmengine.registry import Registry
from torch import nn

from ..models.reversible import EXECUTION_MODES, ReversibleSequence

#: Backbone arguments of the three ways to run the same network.
MODES = {mode: dict(mode=mode) for mode in EXECUTION_MODES}
#: The same three in exact mode (fixed-point pairs, ``exact=True``), named
#: ``'<mode>-exact'``: a network that differs from ``MODES``' in rounding.
EXACT_MODES = {
    f'{mode}-exact': dict(mode=mode, exact=True)
    for mode in EXECUTION_MODES
}


def mode_options(label: str) -> dict:
    """Backbone arguments of a mode of :data:`MODES` or
    :data:`EXACT_MODES`."""
    if label in MODES:
        return dict(MODES[label])
    if label in EXACT_MODES:
        return dict(EXACT_MODES[label])
    raise KeyError(f'unknown mode {label!r}; valid modes are '
                   f'{sorted(MODES) + sorted(EXACT_MODES)}.')


def backbone_registry() -> Registry:
    """MMPretrain's ``MODELS`` with mmrevode's backbones registered and
    ``mmpretrain`` as the default scope."""
    import mmrevode  # noqa: F401  (registers the backbones)
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    return MODELS


def quiet_init_weights(module: nn.Module) -> nn.Module:
    """``module.init_weights()`` without MMEngine's line per parameter."""
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        module.init_weights()
    finally:
        logger.setLevel(level)
    return module


def parse_spec(spec: str) -> dict:
    """Read a spec ``'TYPE[:ARCH]'`` (see the module docstring).

    Args:
        spec (str): The spec.

    Returns:
        dict: ``spec``; ``name`` (``TYPE-ARCH`` for a preset, ``TYPE-DEPTH``
        for a dict arch); ``model`` (the type); ``arch`` (the preset name,
        depth or dict); ``blocks`` (blocks per unit, if known); ``depth``
        (in the paper's count, if known); ``cfg`` (the backbone config).
    """
    type_name, _, arch = spec.partition(':')
    cls = backbone_registry().get(type_name)
    if cls is None:
        raise ValueError(f'{type_name!r} is neither a config file nor a '
                         'backbone registered in MMPretrain.')
    params = inspect.signature(cls.__init__).parameters
    key = 'arch' if 'arch' in params else 'depth' if 'depth' in params \
        else None
    if arch:
        value = ast.literal_eval(arch) if arch[0] in '{[(' else arch
    elif key and params[key].default is not inspect.Parameter.empty:
        value = params[key].default
    else:
        raise ValueError(f'{spec!r}: {type_name} needs an arch: give '
                         'TYPE:ARCH.')
    if key is None:
        raise ValueError(f'{type_name} takes neither arch nor depth.')
    settings = getattr(cls, 'arch_settings', {})
    if key == 'depth':
        value = int(value)
        blocks = [(value - 2) // 6] * 3 if type_name == 'CifarResNet' \
            else None
    elif isinstance(value, dict):
        blocks = list(value['blocks'])
    elif str(value).lower() in settings:
        blocks = list(settings[str(value).lower()]['blocks'])
    else:
        raise ValueError(f'{type_name} has no preset {value!r}; presets: '
                         f'{sorted(settings)}.')
    # the depth counted as in the paper, as the backbone states it
    depth = cls.arch_depth(value) if hasattr(cls, 'arch_depth') else None
    if isinstance(value, dict):
        name = f'{type_name}-{depth}' if depth else f'{type_name}-{blocks}'
    else:
        name = f'{type_name}-{value}'
    return dict(
        spec=spec,
        name=name,
        model=type_name,
        arch=value,
        blocks=blocks,
        depth=depth,
        cfg={'type': type_name, key: value})


def sweep_specs(model: str, blocks_per_unit: Sequence[int],
                widths: Sequence[int]) -> List[str]:
    """Specs of a depth sweep: ``TYPE:{'blocks': [n, n, ...], 'widths':
    widths}`` for each ``n`` in ``blocks_per_unit``."""
    return [
        f'{model}:' + repr(dict(blocks=[n] * len(widths), widths=list(widths)))
        for n in blocks_per_unit
    ]


def model_spec(model: str, cfg_options: Optional[dict] = None) -> dict:
    """A spec, or a config file whose ``model.backbone`` is the model.

    Args:
        model (str): ``'TYPE[:ARCH]'`` or the path of a config file.
        cfg_options (dict, optional): Overrides of the config file's
            settings. Defaults to None.

    Returns:
        dict: As :func:`parse_spec`; for a config file ``name`` is the
        file's name and ``arch``, ``blocks``, ``depth`` are those of the
        backbone config if it names an arch.
    """
    if not (model.endswith('.py') or osp.isfile(model)):
        return parse_spec(model)
    from mmengine.config import Config
    cfg = Config.fromfile(model)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    backbone = copy.deepcopy(cfg.model.backbone)
    backbone = backbone.to_dict() if hasattr(backbone, 'to_dict') \
        else dict(backbone)
    return dict(
        spec=model,
        name=osp.splitext(osp.basename(model))[0],
        model=backbone['type'],
        arch=backbone.get('arch', backbone.get('depth')),
        blocks=None,
        depth=None,
        cfg=backbone)


def build_backbone(model: Union[str, dict],
                   backbone_options: Optional[dict] = None,
                   checkpoint: Optional[str] = None,
                   seed: Optional[int] = None) -> nn.Module:
    """Build a freshly initialised backbone (or load its weights).

    Args:
        model (str | dict): A spec, a config file (see :func:`model_spec`)
            or what :func:`parse_spec` returns.
        backbone_options (dict, optional): Overrides of the backbone's
            arguments, e.g. ``dict(h=0.05)``. Defaults to None.
        checkpoint (str, optional): Load the backbone's weights from this
            checkpoint (see :func:`load_backbone_checkpoint`).
            Defaults to None.
        seed (int, optional): Seed torch's generator with it before the
            initialisation. Defaults to None (as it is).
    """
    spec = model_spec(model) if isinstance(model, str) else model
    cfg = dict(spec['cfg'], **(backbone_options or {}))
    if seed is not None:
        torch.manual_seed(seed)
    backbone = quiet_init_weights(backbone_registry().build(cfg))
    if checkpoint:
        load_backbone_checkpoint(backbone, checkpoint)
    return backbone


def load_backbone_checkpoint(backbone: nn.Module, path: str):
    """Load the backbone's weights from an MMPretrain (or bare) checkpoint.

    The file is read by the safe loader
    (:func:`mmrevode.engine.load_from_local`). ``backbone.``-prefixed keys of
    a classifier checkpoint are matched to the backbone; other keys (head,
    data preprocessor) are ignored. Weights that do not fit the backbone
    exactly raise :class:`mmrevode.engine.CheckpointMismatchError`.
    """
    from mmrevode.engine import check_checkpoint_fits, load_from_local
    checkpoint = load_from_local(path, map_location='cpu')
    state = checkpoint.get('state_dict', checkpoint) \
        if isinstance(checkpoint, dict) else checkpoint
    if isinstance(state, dict) and any(
            k.startswith('backbone.') for k in state):
        state = {
            k[len('backbone.'):]: v
            for k, v in state.items() if k.startswith('backbone.')
        }
    check_checkpoint_fits(backbone, dict(state_dict=state), path,
                          f'the backbone {type(backbone).__name__}')
    backbone.load_state_dict(state)


def set_mode(model: nn.Module, mode: str) -> nn.Module:
    """Switch every unit of ``model`` to the execution mode ``mode``
    (``'reversible'``, ``'plain'`` or ``'checkpoint'``)."""
    for module in model.modules():
        if isinstance(module, ReversibleSequence):
            module.mode = mode
    return model


def image_size(input_size: Union[int, Sequence[int]]) -> Tuple[int, int]:
    """``(height, width)`` from a size or a pair."""
    if isinstance(input_size, int):
        return input_size, input_size
    height, width = input_size
    return int(height), int(width)
