"""The network a checkpoint was trained with, compared with the one built.

A backbone of mmrevode records in its ``state_dict`` everything that
defines its network but is not a weight (step size ``h``, ``arch``, the
scheme's options, activation, norm type, stem, ...): torch's extra state,
under the key ``<prefix>_extra_state`` (``backbone._extra_state`` in a
classifier or detector). The definition is a small dict of plain Python
data, stored as its JSON text in a 1-D ``uint8`` tensor
(:func:`encode_definition`): torch's TorchScript tracer, which FLOP counting
and the TorchScript ONNX exporter use, takes every ``state_dict`` value for
a tensor, and ``torch.load(weights_only=True)`` reads it with no allowlist.

Every load of a checkpoint compares that record with the network that was
built (see :class:`~mmrevode.models.backbones.DefinedBackbone`). This module
holds the comparison, its one-line messages and errors, the check of a
whole model against a loaded ``state_dict`` (used by
:func:`~mmrevode.engine.check_checkpoint_fits`), and the conversion of
checkpoints written before definitions were recorded
(``tools/model_converters/add_definition.py``).
"""
import io
import json
import os.path as osp
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

import torch
from torch import nn

from .checkpoint import CheckpointError, atomic_write, load_from_local

#: The ``state_dict`` key (after a module's prefix) of torch's extra state,
#: where a backbone keeps its definition.
DEFINITION_KEY = '_extra_state'

#: Where the backbone's arguments are set in a config.
CONFIG_PREFIX = 'model.backbone'

#: The converter of checkpoints without a definition.
CONVERTER = 'tools/model_converters/add_definition.py'

#: Stands for a definition key that one side does not record.
NOT_RECORDED = object()
#: Stands for a recorded definition that cannot be read.
UNREADABLE = object()


class NetworkMismatchError(CheckpointError):
    """A checkpoint was trained with another network than the one built
    (another step size, arch, scheme option, activation, ...)."""


class MissingDefinitionError(NetworkMismatchError):
    """A checkpoint holds a backbone's weights but not the definition of
    their network (written before definitions were recorded)."""


def plain_data(value: Any, where: str = 'definition') -> Any:
    """``value`` as plain Python data: dicts with str keys, lists, str,
    int, float, bool and None (tuples become lists, ``ConfigDict`` a dict),
    so that it pickles with no globals and loads with
    ``torch.load(weights_only=True)``.

    Raises:
        TypeError: ``value`` holds anything else.
    """
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Mapping):
        result = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f'{where}: keys must be str, got {key!r}.')
            result[key] = plain_data(item, f'{where}.{key}')
        return result
    if isinstance(value, (list, tuple)):
        return [plain_data(item, f'{where}[]') for item in value]
    raise TypeError(f'{where}: {type(value).__name__} is not plain data '
                    '(dict, list, str, int, float, bool or None).')


def encode_definition(definition: Mapping[str, Any]) -> torch.Tensor:
    """A definition (plain data, see :func:`plain_data`) as its JSON text,
    UTF-8, in a 1-D ``uint8`` tensor. Floats keep their exact value (JSON
    holds their shortest round-trip form)."""
    text = json.dumps(plain_data(definition), allow_nan=False)
    return torch.tensor(list(text.encode('utf-8')), dtype=torch.uint8)


#: A definition is a few hundred bytes; anything much larger is not one.
MAX_DEFINITION_BYTES = 1 << 16


def decode_definition(value: Any) -> Any:
    """The definition stored by :func:`encode_definition` (a dict is taken
    as it is); anything unreadable is returned unchanged, to be reported as
    a difference."""
    if isinstance(value, torch.Tensor) and value.dtype == torch.uint8 and \
            value.dim() == 1 and value.numel() <= MAX_DEFINITION_BYTES:
        try:
            return json.loads(bytes(value.tolist()).decode('utf-8'))
        except (ValueError, RecursionError):
            return value
    return value


def same_data(a: Any, b: Any) -> bool:
    """Exact equality of plain data, types included (``1 != 1.0 != True``;
    floats compared exactly)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(
            same_data(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(map(same_data, a, b))
    return a == b


def definition_differences(
        saved: Mapping[str, Any],
        built: Mapping[str, Any],
        unrecorded: Optional[Mapping[str, Any]] = None
) -> List[Tuple[str, Any, Any]]:
    """The keys in which two definitions differ.

    Args:
        saved (Mapping): The definition a checkpoint records.
        built (Mapping): The definition of the network built.
        unrecorded (Mapping, optional): For keys a checkpoint may lack
            (added after the first definitions were written), the value the
            networks had before. Defaults to None.

    Returns:
        list[tuple]: ``(key, saved value, built value)`` for each differing
        key, in the order of ``built`` (then keys only ``saved`` has);
        :data:`NOT_RECORDED` for a value one side lacks. A differing
        ``type`` is reported alone: the other keys belong to another
        network.
    """
    unrecorded = unrecorded or {}
    keys = list(built) + [k for k in saved if k not in built]
    differences = []
    for key in keys:
        old = saved[key] if key in saved else unrecorded.get(
            key, NOT_RECORDED)
        new = built.get(key, NOT_RECORDED)
        if not same_data(old, new):
            differences.append((key, old, new))
    types = [d for d in differences if d[0] == 'type']
    return types or differences


def show_value(value: Any) -> str:
    """``repr(value)``; 'not recorded' for :data:`NOT_RECORDED`,
    'unreadable' for :data:`UNREADABLE`."""
    if value is NOT_RECORDED:
        return 'not recorded'
    return 'unreadable' if value is UNREADABLE else repr(value)


def _checkpoint(path: str = '') -> str:
    return f'The checkpoint {path}' if path else 'The checkpoint'


def mismatch_message(differences: List[Tuple[str, Any, Any]],
                     path: str = '') -> str:
    """One line naming each differing key with both values, the config
    key to set and the override (see :func:`definition_differences`)."""
    trained = ', '.join(f'{k}={show_value(old)}' for k, old, _ in differences)
    built = ', '.join(f'{k}={show_value(new)}' for k, _, new in differences)
    keys = ', '.join(f'{CONFIG_PREFIX}.{k}' for k, _, _ in differences)
    if len(differences) == 1:
        fix = f'Set it to {show_value(differences[0][1])}'
    else:
        fix = "Set them to the checkpoint's values"
    return (f'{_checkpoint(path)} was trained with backbone {trained}; this '
            f'model has {built} ({keys}). {fix}, or set '
            f'{CONFIG_PREFIX}.check_definition=False to run this different '
            'network with these weights on purpose.')


def missing_message(network: str, path: str = '') -> str:
    """One line for a checkpoint without a definition: how to convert it."""
    return (f'{_checkpoint(path)} holds {network} weights but not the '
            'definition of their network (h, arch, ...), as checkpoints '
            'written before definitions were recorded do, so nothing shows '
            'that this model is the network it was trained as. Convert it '
            f'once with `python {CONVERTER} CONFIG CHECKPOINT OUTPUT '
            '[--cfg-options ...]`, CONFIG and the options building the '
            'network it was trained with, or set '
            f'{CONFIG_PREFIX}.check_definition=False to load it unchecked.')


def defined_modules(model: nn.Module) -> Iterator[Tuple[str, nn.Module]]:
    """``(state_dict prefix, module)`` of each module of ``model`` that
    records a definition (has ``definition_error``)."""
    for name, module in model.named_modules():
        if callable(getattr(module, 'definition_error', None)):
            yield (f'{name}.' if name else ''), module


def holds_weights(state_dict: Mapping[str, Any], prefix: str,
                  module: nn.Module) -> bool:
    """Whether ``state_dict`` holds a weight (parameter or buffer) of
    ``module``, whose keys start with ``prefix``."""
    names = [n for n, _ in module.named_parameters()]
    names += [n for n, _ in module.named_buffers()]
    return any(prefix + name in state_dict for name in names)


def definition_error(model: nn.Module,
                     state_dict: Mapping[str, Any],
                     path: str = '') -> Optional[NetworkMismatchError]:
    """The error that loading ``state_dict`` into ``model`` would raise
    for the first backbone whose definition differs or is missing (with
    its ``check_definition`` on), or None.

    Args:
        model (nn.Module): The model to load into.
        state_dict (Mapping): The weights to load (without a ``module.``
            prefix).
        path (str): The checkpoint, named in the message. Defaults to ''.
    """
    for prefix, module in defined_modules(model):
        if not holds_weights(state_dict, prefix, module):
            continue
        error = module.definition_error(
            state_dict.get(prefix + DEFINITION_KEY), path)
        if error is not None:
            return error
    return None


def record_definitions(model: nn.Module, checkpoint: dict,
                       path: str = '') -> List[str]:
    """Add the definition of each backbone of ``model`` to ``checkpoint``
    (in place) where it holds the backbone's weights but no definition.

    Args:
        model (nn.Module): The model the checkpoint was trained as.
        checkpoint (dict): A loaded checkpoint (with ``state_dict``, or the
            weights themselves).
        path (str): The checkpoint, named in messages. Defaults to ''.

    Returns:
        list[str]: The keys added.

    Raises:
        NetworkMismatchError: The checkpoint records a definition that
            differs from the model's.
    """
    state = checkpoint.get('state_dict', checkpoint)
    # MMEngine strips the prefix of a model wrapper when it loads
    wrapper = 'module.' if state and all(
        k.startswith('module.') for k in state) else ''
    weights = {k[len(wrapper):]: v for k, v in state.items()}
    added = []
    for prefix, module in defined_modules(model):
        if not holds_weights(weights, prefix, module):
            continue
        key = wrapper + prefix + DEFINITION_KEY
        if key in state:
            differences = module.definition_differences(state[key])
            if differences:
                raise NetworkMismatchError(
                    mismatch_message(differences, path))
            continue
        state[key] = module.get_extra_state()
        added.append(key)
    return added


def add_definition(config: str,
                   source: str,
                   destination: str,
                   cfg_options: Optional[dict] = None) -> Dict[str, Any]:
    """Write ``source`` with the definition of the network ``config``
    builds to ``destination``: the converter of checkpoints written before
    definitions were recorded.

    The checkpoint is read with the project's safe loader
    (:func:`~mmrevode.engine.load_from_local`); its weights must fit the
    model (same keys and shapes), else nothing is written. Everything else
    in it (optimizer, meta, message hub) is kept.

    Args:
        config (str): The config the checkpoint was trained with.
        source (str): The checkpoint without a definition.
        destination (str): Where the converted checkpoint is written
            (atomically; it may be ``source``).
        cfg_options (dict, optional): Overrides of the config, e.g.
            ``{'model.backbone.h': 0.02}``. Defaults to None.

    Returns:
        dict: ``{state_dict key: recorded definition (a dict)}`` for each
        definition added (empty if the checkpoint recorded them all
        already).

    Raises:
        CheckpointError: The checkpoint cannot be read, does not fit the
            model, or records another definition.
    """
    from mmrevode.utils.tools import build_from_config

    from .checkpoint_fit import check_checkpoint_fits
    _, model = build_from_config(config, cfg_options)
    checkpoint = load_from_local(source, map_location='cpu')
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f'The checkpoint {source} is not a dict of '
                              'weights.')
    check_checkpoint_fits(
        model, checkpoint, source, f'the config {config}',
        check_definitions=False)
    added = record_definitions(model, checkpoint, source)
    state = checkpoint.get('state_dict', checkpoint)
    if added or osp.abspath(source) != osp.abspath(destination):
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        atomic_write(buffer.getvalue(), destination)
    return {key: decode_definition(state[key]) for key in added}
