"""``torch.compile`` for training: the model's modules, not the train step.

MMEngine 0.10.7's ``compile=True`` compiles the model's whole
``train_step``: data preprocessing, forward, loss, backward and the
optimizer step with its parameter schedulers and gradient scaling. Under
torch 2.14 dynamo fails inside the optimizer wrapper
(``InternalTorchDynamoError: 'UserDefinedDictVariable' object has no
attribute 'items'``), for every model. What pays to compile is the model's
forward; :class:`ModelCompileHook` compiles the modules that make it up, in
place, and leaves the step to eager PyTorch.
"""
from typing import List, Optional, Sequence, Union

import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS
from torch import nn

DEFAULT_TARGETS = ('backbone', 'neck', 'head')


def compile_model(model: nn.Module,
                  targets: Sequence[str] = DEFAULT_TARGETS,
                  compile_steps: bool = False,
                  **compile_cfg) -> List[str]:
    """Compile submodules of ``model`` in place with ``torch.compile``.

    Each target is compiled with :meth:`torch.nn.Module.compile`, which
    keeps the module (and so the ``state_dict`` keys, checkpoints, DDP and
    optimizers) as it is and only makes its calls go through dynamo. With
    ``compile_steps``, the step functions ``F`` of every reversible unit
    (:class:`~mmrevode.models.reversible.ReversibleSequence`) are compiled
    too: a unit's memory-efficient backward is a custom autograd Function
    that dynamo leaves opaque, and inside it these compiled functions run in
    the forward and in the backward's recompute.

    Args:
        model (nn.Module): The model, possibly in a model wrapper (DDP).
        targets (Sequence[str]): Names of the submodules to compile, e.g.
            ``('backbone', 'neck', 'head')``; ``'model'`` compiles the
            model's own forward. Names the model lacks, or that are None,
            are skipped. Defaults to ``('backbone', 'neck', 'head')``.
        compile_steps (bool): Compile the step functions of the reversible
            units. Defaults to False.
        **compile_cfg: Keyword arguments of ``torch.compile`` (``backend``,
            ``mode``, ``dynamic``, ``fullgraph``, ``options``).

    Returns:
        list[str]: The names of the modules compiled (``'backbone'``,
        ``'backbone.units.0.blocks.0.f1'``, ...), for the log.
    """
    from mmrevode.models.reversible import ReversibleSequence

    if isinstance(targets, str):
        targets = (targets, )
    if is_model_wrapper(model):
        model = model.module
    names = []
    for target in targets:
        module = model if target == 'model' else getattr(model, target, None)
        if module is None:
            continue
        if not isinstance(module, nn.Module):
            raise TypeError(f'compile_model: model.{target} is a '
                            f'{type(module).__name__}, not an nn.Module.')
        if compile_steps:
            for unit_name, unit in module.named_modules():
                if isinstance(unit, ReversibleSequence):
                    names += _compile_step_functions(
                        unit, _join(target, unit_name), compile_cfg)
        _compile(module, compile_cfg)
        names.append(target)
    return names


def _compile_step_functions(unit, prefix: str, compile_cfg: dict) -> List[str]:
    names = []
    fn_names = {id(m): n for n, m in unit.named_modules()}
    for block in unit.blocks:
        for step in block.shift_steps():
            fn = step.fn
            if isinstance(fn, nn.Module) and not _is_compiled(fn):
                _compile(fn, compile_cfg)
                names.append(_join(prefix, fn_names.get(id(fn), '?')))
    return names


def _compile(module: nn.Module, compile_cfg: dict) -> None:
    if not hasattr(module, 'compile'):
        raise RuntimeError('Compiling modules in place needs torch >= 2.2 '
                           '(nn.Module.compile); this is '
                           f'{torch.__version__}.')
    if not _is_compiled(module):
        module.compile(**compile_cfg)


def _is_compiled(module: nn.Module) -> bool:
    return getattr(module, '_compiled_call_impl', None) is not None


def _join(prefix: str, name: str) -> str:
    return f'{prefix}.{name}' if name else prefix


@HOOKS.register_module()
class ModelCompileHook(Hook):
    """Compile the model's forward (not the optimizer step) before a run.

    At ``before_run`` of training, validation and testing, compiles the
    model's ``targets`` in place with :func:`compile_model`. Gradients,
    the optimizer step, gradient scaling and the reversible units' backward
    stay eager. The first iterations are slow while dynamo compiles.

    Configs can ask for it directly::

        custom_hooks = [dict(type='ModelCompileHook')]
        custom_hooks = [dict(type='ModelCompileHook', backend='inductor',
                             mode='max-autotune-no-cudagraphs')]

    or keep MMEngine's key, ``compile = True`` or ``compile = dict(...)``,
    which :func:`use_compile_hook` turns into this hook.

    Args:
        targets (Sequence[str]): See :func:`compile_model`.
            Defaults to ``('backbone', 'neck', 'head')``.
        compile_steps (bool): See :func:`compile_model`. Defaults to False.
        **compile_cfg: Keyword arguments of ``torch.compile``.
    """
    priority = 'VERY_HIGH'

    def __init__(self,
                 targets: Sequence[str] = DEFAULT_TARGETS,
                 compile_steps: bool = False,
                 **compile_cfg):
        self.targets = targets
        self.compile_steps = compile_steps
        self.compile_cfg = compile_cfg

    def before_run(self, runner) -> None:
        names = compile_model(runner.model, self.targets, self.compile_steps,
                              **self.compile_cfg)
        top = [n for n in names if '.' not in n]
        runner.logger.info(
            f'torch.compile: compiled {", ".join(top) or "nothing"} '
            f'({len(names) - len(top)} step functions of reversible units '
            'besides); the first iterations will be slow.')


def use_compile_hook(cfg: Config) -> Config:
    """Replace MMEngine's ``compile`` option by :class:`ModelCompileHook`.

    MMEngine's Runner compiles the whole ``train_step`` when the config has
    ``compile=True`` (or a dict of ``torch.compile`` arguments), which fails
    under torch 2.14. This function removes the key and adds the hook with
    the same arguments, so ``--cfg-options compile=True`` compiles the
    model's forward instead. A dict may also carry the hook's ``targets``
    and ``compile_steps``. Without the key (or with ``compile=False``) the
    config is returned unchanged.

    Args:
        cfg (Config): The config, modified in place.

    Returns:
        Config: ``cfg``.
    """
    option: Optional[Union[bool, dict]] = cfg.get('compile', None)
    if option is None:
        return cfg
    cfg.pop('compile')
    if option is False:
        return cfg
    if option is True:
        option = {}
    if not isinstance(option, dict):
        raise TypeError('`compile` must be a bool or a dict of torch.compile '
                        f'arguments, got {option!r}.')
    hooks = list(cfg.get('custom_hooks', None) or [])
    hooks = [h for h in hooks if h.get('type') != 'ModelCompileHook']
    hooks.append(dict(type='ModelCompileHook', **option))
    cfg.custom_hooks = hooks
    return cfg
