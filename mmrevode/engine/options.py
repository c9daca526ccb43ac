"""The command line of the tools: arguments, and ``--cfg-options``.

The one definition of ``--cfg-options`` (:func:`add_cfg_options_argument`)
and of its checked merge into a config (:func:`merge_cfg_options`: a key
must be one the config or the class it builds knows); the arguments every
runner script shares (:func:`add_common_arguments`,
:func:`add_train_arguments`, :func:`add_loader_arguments`,
:func:`parse_args`); and the image-size parser of the tools that take
``H [W]`` (:func:`parse_image_size`).
"""
import argparse
import difflib
import inspect
import os
from typing import List, Optional, Sequence, Tuple

from mmengine.config import Config, DictAction
from mmengine.runner import Runner
from torch.utils.data import DataLoader


class LaunchError(RuntimeError):
    """A mistake on the command line or in the config, told in one line."""


#: Top-level keys that MMEngine's Runner reads besides its arguments.
RUNNER_KEYS = ('compile', 'runner_type', 'model_wrapper_cfg',
               'find_unused_parameters', 'activation_checkpointing',
               'efficient_conv_bn_eval', 'strategy', 'gpu_ids')

#: What builds the top-level dicts that name no ``type``.
DEFAULT_TYPES = dict(
    optim_wrapper='OptimWrapper',
    val_cfg='ValLoop',
    test_cfg='TestLoop',
    log_processor='LogProcessor')

#: Keys of a data-loader config that MMEngine takes besides DataLoader's.
DATALOADER_KEYS = ('dataset', 'sampler', 'batch_sampler', 'worker_init_fn',
                   'num_batch_per_epoch', 'disable_subprocess_warning')


#: The help of ``--cfg-options`` where the keys are checked.
CHECKED_HELP = (
    'override settings of the config, as key=value pairs merged into it, '
    'e.g. train_dataloader.batch_size=64; lists as key="[a,b]" or key=a,b; '
    'quotes needed, no white space. A key that is not in the config is '
    'refused (with near matches); write +key=value to add a new one on '
    'purpose')


def add_cfg_options_argument(
        parser: argparse.ArgumentParser,
        help: str = 'override settings of the config, as key=value pairs'
) -> None:
    """Add ``--cfg-options key=value ...`` (overrides of the config, parsed
    by MMEngine's ``DictAction``; merge them with :func:`merge_cfg_options`).

    Args:
        parser (ArgumentParser): The tool's parser.
        help (str): The option's help. Defaults to a short one.
    """
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, help=help)


def add_common_arguments(parser: argparse.ArgumentParser,
                         loads_checkpoints: bool = True) -> None:
    """Add the arguments every runner script takes.

    Args:
        parser (ArgumentParser): The script's parser.
        loads_checkpoints (bool): Add ``--trust-checkpoint`` and
            ``--partial-load``. Defaults to True.
    """
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    add_cfg_options_argument(parser, CHECKED_HELP)
    if loads_checkpoints:
        parser.add_argument(
            '--trust-checkpoint',
            action='store_true',
            help='load checkpoints with torch.load(weights_only=False): for '
            'files you made or trust only, since such a file can run code. '
            'Without it a checkpoint that needs types beyond weights, NumPy '
            'arrays and MMEngine log buffers is refused')
        parser.add_argument(
            '--partial-load',
            action='store_true',
            help='load the weights of a checkpoint that fit the model and '
            'ignore the rest (default: refuse a checkpoint that does not fit)')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    # torch.distributed.launch passes --local-rank (torch >= 2.0)
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--resume [PATH]``, ``--amp`` and ``--auto-scale-lr``."""
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from the given checkpoint; without a path, from the '
        'latest checkpoint in the work directory')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='enable automatic-mixed-precision training')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the learning rate by the actual total batch size over '
        '`auto_scale_lr.base_batch_size` of the config')


def add_loader_arguments(parser: argparse.ArgumentParser,
                         persistent_workers: bool = True) -> None:
    """Add ``--no-pin-memory`` (and ``--no-persistent-workers``)."""
    parser.add_argument(
        '--no-pin-memory',
        action='store_true',
        help='disable pin_memory in the data loaders')
    if persistent_workers:
        parser.add_argument(
            '--no-persistent-workers',
            action='store_true',
            help='disable persistent_workers in the data loaders')


def parse_args(parser: argparse.ArgumentParser, argv=None):
    """Parse ``argv`` and export ``LOCAL_RANK`` for the launchers."""
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def merge_cfg_options(cfg: Config, options: Optional[dict]) -> None:
    """Merge ``--cfg-options`` into ``cfg``, refusing unknown keys.

    A key must exist in the config, or be an argument of the class that the
    enclosing ``dict(type=...)`` builds (e.g. ``model.backbone.h``), a
    top-level key of MMEngine's Runner (e.g. ``compile``) or a DataLoader
    argument of a ``*_dataloader``. A key written with a leading ``+``
    (``+my_key=1``) is added as given.

    Args:
        cfg (Config): The config, changed in place.
        options (dict, optional): The parsed ``--cfg-options``.

    Raises:
        LaunchError: A key is unknown; the message suggests near matches.
    """
    if not options:
        return
    checked = {}
    for key, value in options.items():
        if key.startswith('+'):
            checked[key[1:]] = value
            continue
        _check_key(cfg, key)
        _check_kind(cfg, key, value)
        checked[key] = value
    cfg.merge_from_dict(checked)


def _check_kind(cfg: Config, key: str, value) -> None:
    """A number or a switch of the config is not replaced by text (None
    stays allowed: it often means "choose for me", e.g. a drawn seed)."""
    if value is None:
        return
    node = cfg.to_dict()
    for part in key.split('.'):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, (list, tuple)) and part.isdigit() and \
                int(part) < len(node):
            node = node[int(part)]
        else:
            return  # a key the config does not set: its class checks it
    if isinstance(node, bool) and not isinstance(value, bool):
        raise LaunchError(f'--cfg-options {key}={value}: the config has '
                          f'{node} here; give True or False.')
    if isinstance(node, (int, float)) and not isinstance(node, bool) and \
            not isinstance(value, (int, float)):
        raise LaunchError(f'--cfg-options {key}={value}: the config has the '
                          f'number {node} here; give a number.')


def _check_key(cfg: Config, key: str) -> None:
    parts = key.split('.')
    node, parent_key = cfg.to_dict(), ''
    for depth, part in enumerate(parts):
        if isinstance(node, (list, tuple)) and part.isdigit() and \
                int(part) < len(node):
            node, parent_key = node[int(part)], part
            continue
        if isinstance(node, dict) and part in node:
            node, parent_key = node[part], part
            continue
        if isinstance(node, dict) and _accepts(
                node, part, parent_key, top_level=depth == 0):
            return  # a known argument; what lies below it is new
        where = '.'.join(parts[:depth]) or 'the config'
        names = list(node) if isinstance(node, dict) else []
        if depth == 0:
            names += list(RUNNER_KEYS)
        near = difflib.get_close_matches(part, names, n=3)
        hint = (f' Did you mean {", ".join(near)}?' if near else '')
        raise LaunchError(
            f'--cfg-options {key}: {where} has no key {part!r}.{hint} To add '
            f'a new key on purpose, write +{key}=...')


def _accepts(node: dict, name: str, parent_key: str, top_level: bool) -> bool:
    """Whether ``name`` is a known key of ``node`` although absent."""
    if top_level:
        return name in RUNNER_KEYS or name in inspect.signature(
            Runner.__init__).parameters
    if parent_key.endswith('dataloader'):
        return name in DATALOADER_KEYS or name in inspect.signature(
            DataLoader.__init__).parameters
    if parent_key == 'randomness':
        return _takes(Runner.set_randomness, name)
    built = node.get('type', DEFAULT_TYPES.get(parent_key))
    if built is None and parent_key == 'train_cfg':
        built = 'EpochBasedTrainLoop' if node.get('by_epoch', True) \
            else 'IterBasedTrainLoop'
    if built is None:
        return False
    return any(_takes(cls, name) for cls in _resolve(built))


def _takes(cls, name: str) -> bool:
    """Whether ``cls(name=...)`` is a keyword it accepts: an ``__init__``
    that passes ``**kwargs`` on is followed up its bases."""
    if not isinstance(cls, type):
        params = inspect.signature(cls).parameters
        return name in params or any(p.kind == p.VAR_KEYWORD
                                     for p in params.values())
    for klass in cls.__mro__:
        if '__init__' not in vars(klass):
            continue
        if klass is object:
            return False
        params = inspect.signature(klass.__init__).parameters
        if name in params:
            return True
        if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            return False
    return False


def _resolve(built) -> List[type]:
    """The classes a ``type`` value may name, in the registries in use."""
    if not isinstance(built, str):
        return [built] if callable(built) else []
    import mmpretrain.registry as registries
    found = []
    for name in dir(registries):
        registry = getattr(registries, name)
        if hasattr(registry, 'get') and hasattr(registry, 'module_dict'):
            try:
                cls = registry.get(built)
            except Exception:  # a scope that is not installed
                cls = None
            if cls is not None:
                found.append(cls)
    return found


def parse_image_size(values: Sequence[int]) -> Tuple[int, int]:
    """``--shape H W`` or ``--shape S`` (a square) as ``(H, W)``.

    Raises:
        ValueError: For other numbers of values, or sizes below 1.
    """
    values = list(values)
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or min(values) < 1:
        raise ValueError('an image size is H W or one size for a square, '
                         f'got {values}.')
    return values[0], values[1]
