"""Resuming with changed settings: ``--cfg-options`` over the checkpoint's.

MMEngine's ``Runner.resume`` loads, over what the config built, the
optimizer's state (its parameter groups carry ``lr``, ``momentum``,
``weight_decay``, ``betas``, ...), the parameter schedulers' state (their
``base_values``, ``milestones``, ``gamma``, ...) and the checkpoint's random
seed. An option such as ``--cfg-options optim_wrapper.optimizer.lr=0.01``
given with ``--resume`` would therefore be dropped without a word. This
module makes such options either take effect or stop the run:

- :func:`plan_resume_options` sorts the options of a resumed run: optimizer
  hyper-parameters and scheduler arguments are applied; what cannot be
  applied to a run in progress (another optimizer or scheduler type, how a
  scheduler counts its steps, a seed other than the checkpoint's) raises
  :class:`ResumeError`, which the tools print as one line;
- :class:`ResumeOptionsHook` applies them: in ``after_load_checkpoint``,
  which ``Runner.resume`` calls before it loads the optimizer and the
  schedulers from the checkpoint, it edits the loaded checkpoint so that
  what is loaded carries the new values, and logs every replacement.

An optimizer hyper-parameter that a scheduler drives (``lr``, or
``momentum`` with a momentum scheduler) is taken as the new *base* value:
each parameter group's current value, its ``initial_*`` value and the
schedulers' ``base_values`` are scaled by new base / old base, so the
schedule continues from where it was. With ``lr=0.01`` over a checkpoint of
base lr 0.1 that has been divided by 10 once, the run continues at 0.001.
Other hyper-parameters (``weight_decay``, ``nesterov``, ``eps``, ...) are
set to the new value (times the group's multiplier of ``paramwise_cfg``).
A scheduler without an ``end`` of its own ends with the training; when the
length of training differs from the checkpoint's, it follows the new one.
"""
from collections import Counter
from typing import Dict, List, Optional, Sequence, Tuple

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.optim import OptimWrapperDict
from mmengine.registry import HOOKS


class ResumeError(RuntimeError):
    """A ``--cfg-options`` setting cannot be applied to a resumed run."""


#: Scheduler arguments that decide which scheduler it is and how it counts
#: its steps: the checkpoint's step count would not mean the same.
FIXED_SCHEDULER_KEYS = ('type', 'by_epoch', 'convert_to_iter_based',
                        'param_name')
#: Options that change what the best checkpoint is: the best score that
#: the checkpoint's message hub carries would be compared by the old rule.
BEST_KEYS = ('default_hooks.checkpoint.save_best',
             'default_hooks.checkpoint.rule')
#: Parameter-group keys that ``paramwise_cfg`` multiplies.
PARAMWISE_KEYS = ('lr', 'weight_decay')
#: Parameter-group entries that are not hyper-parameters.
NOT_HYPER_PARAMETERS = ('params', )


#: How to go on when a resumed run cannot take an option.
NEW_RUN = ('Start a new run instead (without --resume, or with '
           'load_from=PATH to start from its weights).')


def plan_resume_options(options: Optional[dict], cfg,
                        checkpoint_seed: Optional[int], path: str) -> dict:
    """Sort the ``--cfg-options`` of a resumed run.

    Args:
        options (dict, optional): The parsed ``--cfg-options`` (a leading
            ``+`` is ignored).
        cfg (Config): The run's config (for the layout of
            ``param_scheduler``: a list takes keys
            ``param_scheduler.<index>.<name>``, one dict
            ``param_scheduler.<name>``).
        checkpoint_seed (int, optional): The seed in the checkpoint's meta.
        path (str): The checkpoint, for the messages.

    Besides the options, every scheduler of ``cfg`` without an ``end`` of
    its own gets entries that make it follow the length of training of the
    config (MMEngine ends such a scheduler with the training, and the
    checkpoint's state would keep the old length).

    Returns:
        dict: The arguments of :class:`ResumeOptionsHook`: ``optimizer``
        (parameter-group key -> the option's value, ``'*'`` for every key),
        ``schedulers`` (``[index, name, value, option]``, and True fifth
        for the entries that follow the length of training),
        ``loss_scale`` (drop the checkpoint's loss-scaler state),
        ``reset_best`` (the option that changes what the best checkpoint
        is, if any) and ``sources`` (the option behind each entry, for the
        log).

    Raises:
        ResumeError: An option that a resumed run cannot take.
    """
    scheduler_is_list, per_optimizer = scheduler_layout(cfg)
    plan = dict(optimizer={}, schedulers=[], loss_scale=False,
                reset_best=None, sources={})
    for raw_key, value in (options or {}).items():
        key = raw_key.lstrip('+')
        parts = key.split('.')
        if key == 'randomness.seed':
            if checkpoint_seed is not None and value != checkpoint_seed:
                raise ResumeError(
                    f'--cfg-options randomness.seed={value} with --resume: '
                    f'the checkpoint {path} was trained with seed '
                    f'{checkpoint_seed}, and a resumed run keeps it (so that '
                    'it matches an uninterrupted run). Drop the option to '
                    f'resume; to train seed {value}, start a new run (without '
                    '--resume).')
            continue
        if parts[0] == 'optim_wrapper' and 'optimizer' in parts[2:] or \
                parts[0] == 'param_scheduler' and per_optimizer:
            raise ResumeError(
                f'--cfg-options {key} with --resume: optimizer and scheduler '
                'settings are applied to a resumed run with one optimizer '
                'only. ' + NEW_RUN)
        if parts[:2] == ['optim_wrapper', 'optimizer'] or \
                key == 'optim_wrapper':
            if len(parts) <= 2:
                plan['optimizer']['*'] = value
                plan['sources']['*'] = key
            elif parts[2] == 'type':
                raise ResumeError(
                    f'--cfg-options {key}={value} with --resume: the '
                    f'checkpoint {path} holds the state of the optimizer it '
                    'was trained with, which another optimizer cannot '
                    'continue. ' + NEW_RUN)
            else:
                plan['optimizer'][parts[2]] = value
                plan['sources'][parts[2]] = key
        elif parts[:2] == ['optim_wrapper', 'paramwise_cfg']:
            for name in PARAMWISE_KEYS:
                plan['optimizer'].setdefault(name, None)
                plan['sources'].setdefault(name, key)
        elif parts[:2] == ['optim_wrapper', 'loss_scale']:
            plan['loss_scale'] = True
            plan['sources']['loss_scale'] = key
        elif parts[0] == 'param_scheduler':
            plan['schedulers'].append(
                _scheduler_entry(key, parts, value, scheduler_is_list))
        elif key in BEST_KEYS:
            plan['reset_best'] = key
    if not per_optimizer:
        train_cfg = cfg.get('train_cfg') or {}
        length = next((f'train_cfg.{k}={train_cfg[k]}'
                       for k in ('max_epochs', 'max_iters')
                       if k in train_cfg), 'train_cfg')
        plan['schedulers'] += _ends_of_training(cfg, length)
    return plan


def _ends_of_training(cfg, source: str) -> List[list]:
    """Scheduler entries that follow the length of training: ``end`` (and a
    cosine's ``T_max``) of a scheduler that names none ends with the
    training, but the checkpoint's state would keep the old length."""
    schedulers = cfg.get('param_scheduler')
    if isinstance(schedulers, dict):
        schedulers = [schedulers]
    entries = []
    for index, scheduler in enumerate(schedulers or []):
        if isinstance(scheduler, dict) and 'end' not in scheduler:
            entries.append([index, 'end', None, source, True])
            if 'T_max' not in scheduler:
                entries.append([index, 'T_max', None, source, True])
    return entries


def _scheduler_entry(key: str, parts: List[str], value,
                     scheduler_is_list: bool) -> list:
    if scheduler_is_list:
        index, rest = (int(parts[1]), parts[2:]) if len(parts) > 1 and \
            parts[1].isdigit() else (None, parts[1:])
    else:
        index, rest = 0, parts[1:]
    if index is None or not rest:
        raise ResumeError(
            f'--cfg-options {key} with --resume: a resumed run takes the '
            "schedulers' arguments one by one (e.g. param_scheduler"
            f'{".0" if scheduler_is_list else ""}.milestones=[80,120]), not '
            'a whole scheduler. To replace the schedule, start a new run '
            '(without --resume, or with load_from=PATH to start from its '
            'weights).')
    name = rest[0]
    if name in FIXED_SCHEDULER_KEYS:
        raise ResumeError(
            f'--cfg-options {key}={value} with --resume: {name!r} decides '
            'which scheduler it is and how it counts its steps, which the '
            'steps counted in the checkpoint would contradict. ' + NEW_RUN)
    return [index, name, value, key]


def _hyper_parameters(group: dict) -> set:
    return {
        key for key in group if key not in NOT_HYPER_PARAMETERS and
        not key.startswith(('initial_', 'max_', 'min_'))
    }


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _show(value) -> str:
    if isinstance(value, Counter):
        value = sorted(value.elements())
    if isinstance(value, float):
        return f'{value:g}'
    return repr(value) if isinstance(value, str) else str(value)


@HOOKS.register_module()
class ResumeOptionsHook(Hook):
    """Apply ``--cfg-options`` over the state a resumed run loads.

    ``tools/train.py`` adds this hook when ``--resume`` comes with options
    that the checkpoint would otherwise override (see
    :func:`plan_resume_options`). In ``after_load_checkpoint`` it edits the
    loaded checkpoint before ``Runner.resume`` loads the optimizer and the
    schedulers from it:

    - an optimizer hyper-parameter named in ``optimizer`` takes the value of
      the freshly built optimizer (the config with the options, multipliers
      of ``paramwise_cfg`` and ``auto_scale_lr`` included) in every
      parameter group; one that a scheduler drives (it has an ``initial_*``
      entry) is the new base value, and the current value, ``initial_*``
      and the schedulers' ``base_values`` are scaled by new base / old base;
    - a scheduler argument named in ``schedulers`` takes the value of the
      freshly built scheduler; so does the ``end`` of a scheduler that
      names none when the length of training differs from the
      checkpoint's (MMEngine ends such a scheduler with the training, and
      the checkpoint's state would keep the old length): the steps that
      the old end skipped are replayed for milestone and step schedules,
      and a cosine whose ``T_max`` follows the length is refused;
    - with ``loss_scale``, the checkpoint's loss-scaler state is dropped, so
      the configured scale is used;
    - with ``reset_best`` (``save_best`` or ``rule`` of the checkpoint hook
      changed), the best score and best checkpoint recorded in the
      checkpoint's message hub are dropped: the best is found afresh by the
      new metric or rule.

    Every replacement is logged, e.g. ``lr 0.1 from the checkpoint replaced
    by 0.01 from --cfg-options``.

    Args:
        optimizer (dict): Parameter-group key -> the option's value (None:
            several keys changed through ``paramwise_cfg``; ``'*'``: every
            key). Defaults to None.
        schedulers (list): ``[index, name, value, option]`` per scheduler
            argument, with a fifth item True for one that follows the
            length of training (skipped where the scheduler has none).
            Defaults to None.
        loss_scale (bool): Drop the loss-scaler state. Defaults to False.
        reset_best (str, optional): The option that changed ``save_best``
            or ``rule``. Defaults to None.
        sources (dict): The option behind each key, for the log. Defaults to
            None.
    """
    # after SafeCheckpointHook has checked that the weights fit
    priority = 'LOWEST'

    def __init__(self,
                 optimizer: Optional[dict] = None,
                 schedulers: Optional[Sequence[Sequence]] = None,
                 loss_scale: bool = False,
                 reset_best: Optional[str] = None,
                 sources: Optional[dict] = None):
        self.optimizer = dict(optimizer or {})
        self.schedulers = [list(s) for s in schedulers or []]
        self.loss_scale = loss_scale
        self.reset_best = reset_best
        self.sources = dict(sources or {})

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get('optimizer')
        if isinstance(state, dict) and (self.optimizer or self.loss_scale):
            wrapper = runner.optim_wrapper
            if isinstance(wrapper, OptimWrapperDict):
                raise ResumeError(
                    'Optimizer settings in --cfg-options with --resume are '
                    'applied for one optimizer only; this model has '
                    f'{len(wrapper)} ({", ".join(wrapper.keys())}). ' +
                    NEW_RUN)
            if self.optimizer:
                factors = self._apply_optimizer(wrapper, state)
                self._scale_schedulers(
                    checkpoint.get('param_schedulers'), factors)
            if self.loss_scale and 'loss_scaler' in state:
                del state['loss_scaler']
                self._log('the loss scaler state from the checkpoint dropped '
                          'for the loss_scale from --cfg-options '
                          f'({self.sources.get("loss_scale")})')
        if self.schedulers and checkpoint.get('param_schedulers'):
            self._apply_schedulers(runner.param_schedulers, checkpoint)
        if self.reset_best:
            self._reset_best(checkpoint)

    def _reset_best(self, checkpoint: dict) -> None:
        info = (checkpoint.get('message_hub') or {}).get('runtime_info')
        if not isinstance(info, dict):
            return
        dropped = {k: info.pop(k) for k in list(info)
                   if k.startswith(('best_score', 'best_ckpt'))}
        if dropped:
            shown = ', '.join(f'{k} {_show(v)}' for k, v in dropped.items())
            self._log(f'{shown} from the checkpoint dropped for '
                      f'--cfg-options {self.reset_best}: the best is found '
                      'afresh')

    @staticmethod
    def _log(message: str) -> None:
        print_log(f'Resuming: {message}.', logger='current')

    def _keys(self, fresh: List[dict]) -> List[str]:
        if '*' not in self.optimizer:
            return list(self.optimizer)
        return sorted(_hyper_parameters(fresh[0]))

    def _apply_optimizer(self, wrapper, state: dict) -> Dict[str, list]:
        """Write the fresh optimizer's values into the checkpoint's state.

        The groups compared are those the schedulers drive: the optimizer's
        parameter groups and, with several groups, the wrapper's
        ``base_param_settings`` (the config's own values, which MMEngine
        logs as ``base_lr``), last.

        Returns:
            dict: Per scaled key, the factor of every group.
        """
        fresh = list(wrapper.param_groups)
        saved = list(state.get('param_groups', []))
        if isinstance(state.get('base_param_settings'), dict):
            saved.append(state['base_param_settings'])
        if len(fresh) != len(saved) or '*' in self.optimizer and any(
                _hyper_parameters(f) != _hyper_parameters(s)
                for f, s in zip(fresh, saved)):
            raise ResumeError(
                'The optimizer state in the checkpoint has '
                f'{len(saved)} parameter groups with other settings than '
                f'the optimizer of the config ({len(fresh)} groups): it was '
                'made by another optimizer or paramwise_cfg, which '
                '--cfg-options cannot change in a resumed run. ' + NEW_RUN)
        factors = {}
        for key in self._keys(fresh):
            if any(key not in f or key not in s
                   for f, s in zip(fresh, saved)):
                raise ResumeError(
                    f'--cfg-options {self.sources.get(key, key)} with '
                    f'--resume: the optimizer has no setting {key!r}.')
            initial = f'initial_{key}'
            scaled = all(
                _number(f.get(initial)) and _number(s.get(initial))
                and s[initial] != 0 for f, s in zip(fresh, saved))
            before = [(s.get(initial), s[key]) for s in saved]
            if scaled:
                factors[key] = [f[initial] / s[initial]
                                for f, s in zip(fresh, saved)]
                for group, factor, new in zip(saved, factors[key], fresh):
                    group[key] = group[key] * factor
                    for name in (f'max_{key}', f'min_{key}'):
                        if _number(group.get(name)):
                            group[name] = group[name] * factor
                    group[initial] = new[initial]
            else:
                for group, new in zip(saved, fresh):
                    group[key] = new[key]
            self._log_change(key, scaled, saved, before,
                             len(state.get('param_groups', [])))
        return factors

    def _log_change(self, key: str, scaled: bool, saved: List[dict],
                    before: List[tuple], num_groups: int) -> None:
        """One line per key, with the values of the config's base (the
        last group) or of the first group that changed."""
        source = self.sources.get(key, key)
        field = f'initial_{key}' if scaled else key
        old_field = 0 if scaled else 1
        changed = [
            i for i, (old, group) in enumerate(zip(before, saved))
            if old[old_field] != group[field]
        ]
        if not changed:
            self._log(f'{key} from --cfg-options ({source}) equals the '
                      "checkpoint's; nothing replaced")
            return
        i = len(saved) - 1 if len(saved) > num_groups else changed[0]
        old_base, old_now = before[i]
        if scaled:
            message = (f'{key} {_show(old_base)} from the checkpoint '
                       f'replaced by {_show(saved[i][field])} from '
                       f'--cfg-options ({source}) as the base value; the '
                       f'current {key} {_show(old_now)} becomes '
                       f'{_show(saved[i][key])}')
        else:
            message = (f'{key} {_show(old_now)} from the checkpoint replaced '
                       f'by {_show(saved[i][key])} from --cfg-options '
                       f'({source})')
        groups = len([j for j in changed if j < num_groups])
        if groups < num_groups:
            message += f' (in {groups} of {num_groups} parameter groups)'
        self._log(message)

    def _scale_schedulers(self, states, factors: Dict[str, List[float]]):
        """Scale the ``base_values`` of the schedulers of scaled keys."""
        if not factors or not states:
            return
        if isinstance(states, dict):  # one list per optimizer
            states = [s for group in states.values() for s in group]
        for state in states:
            group_factors = factors.get(state.get('param_name'))
            if not group_factors:
                continue
            for name in ('base_values', '_last_value'):
                values = state.get(name)
                if isinstance(values, list) and len(values) == len(
                        group_factors):
                    state[name] = [
                        v * f if _number(v) else v
                        for v, f in zip(values, group_factors)
                    ]

    def _apply_schedulers(self, fresh_schedulers, checkpoint: dict) -> None:
        states = checkpoint['param_schedulers']
        if isinstance(fresh_schedulers, dict) or isinstance(states, dict):
            raise ResumeError(
                'Scheduler settings in --cfg-options with --resume are '
                'applied for one optimizer only. ' + NEW_RUN)
        fresh_schedulers = list(fresh_schedulers or [])
        for index, name, _, source, *derived in self.schedulers:
            follows_training = bool(derived and derived[0])
            if index >= len(fresh_schedulers) or index >= len(states):
                if follows_training:
                    continue
                raise ResumeError(
                    f'--cfg-options {source} with --resume: the checkpoint '
                    f'has {len(states)} parameter schedulers, the config '
                    f'{len(fresh_schedulers)}. ' + NEW_RUN)
            scheduler = fresh_schedulers[index]
            fresh, state = scheduler.state_dict(), states[index]
            if name not in fresh or name not in state:
                if follows_training:
                    continue
                raise ResumeError(
                    f'--cfg-options {source} with --resume: '
                    f'{type(scheduler).__name__} keeps no {name!r} of its '
                    'own that a resumed run could replace. ' + NEW_RUN)
            old = state[name]
            if old == fresh[name]:
                continue
            kind = type(scheduler).__name__
            if follows_training:
                self._follow_training(kind, name, state, fresh, source,
                                      checkpoint.get('optimizer'))
                origin = (f', which the length of training ({source}) sets '
                          f'for a scheduler without its own {name}')
            else:
                origin = f' from --cfg-options ({source})'
            state[name] = fresh[name]
            self._log(f'param_scheduler {name} {_show(old)} from the '
                      f'checkpoint replaced by {_show(fresh[name])}{origin}')

    def _follow_training(self, kind: str, name: str, state: dict,
                         fresh: dict, source: str,
                         optimizer: Optional[dict]) -> None:
        """Continue a scheduler whose end follows a new length of training.

        MMEngine steps a scheduler only below its ``end``; a checkpoint of
        a run that reached its old end has skipped the steps that a longer
        run takes. Those are replayed here where the scheduler's values have
        a closed form (``MultiStepLR``-like milestones, ``StepLR``-like
        periods): its step count and the optimizer's values become those of
        a run trained with the new length from the start. A curve that the
        length shapes (a cosine's ``T_max``) cannot be stretched mid-run.
        """
        if name == 'T_max':
            raise ResumeError(
                f'The length of training ({source}) differs from the '
                f"checkpoint's, and {kind} stretches its curve over it "
                f'(T_max {_show(state[name])} -> {_show(fresh[name])}), which '
                'a resumed run cannot do mid-curve. Keep the length, or give '
                'the scheduler its own T_max and end. ' + NEW_RUN)
        begin, old_end, new_end = state['begin'], state['end'], fresh['end']
        done = state.get('_global_step', 0)
        skipped = sum(1 for g in range(1, done + 1)
                      if begin <= g < new_end and not begin <= g < old_end)
        if not skipped:
            return
        first = state['last_step'] + 1
        steps = range(first, first + skipped)
        if isinstance(state.get('milestones'), Counter):
            factor = state['gamma']**sum(
                state['milestones'][s] for s in steps)
        elif isinstance(state.get('step_size'), int):
            factor = state['gamma']**sum(
                1 for s in steps if s % state['step_size'] == 0)
        else:
            raise ResumeError(
                f'The length of training ({source}) differs from the '
                f"checkpoint's; {kind}, which ends with the training, had "
                f'reached its old end {old_end} and skipped {skipped} steps '
                'that a resumed run cannot replay. Give the scheduler its '
                'own end, or keep the length. ' + NEW_RUN)
        state['last_step'] += skipped
        if factor == 1:
            return
        key = state['param_name']
        groups = list((optimizer or {}).get('param_groups', []))
        if isinstance((optimizer or {}).get('base_param_settings'), dict):
            groups.append(optimizer['base_param_settings'])
        for group in groups:
            if _number(group.get(key)):
                group[key] = group[key] * factor
        state['_last_value'] = [
            v * factor if _number(v) else v
            for v in state.get('_last_value', [])
        ]
        self._log(f'{kind} replayed {skipped} step(s) that the old end '
                  f'{old_end} had skipped: {key} times {_show(factor)}')


def resume_hook_config(plan: dict) -> Optional[dict]:
    """The ``custom_hooks`` entry of a :func:`plan_resume_options` plan, or
    None when it has nothing to apply."""
    if not (plan['optimizer'] or plan['schedulers'] or plan['loss_scale']
            or plan['reset_best']):
        return None
    return dict(type='ResumeOptionsHook', **plan)


def scheduler_layout(cfg) -> Tuple[bool, bool]:
    """Whether the config's ``param_scheduler`` is a list, and whether it is
    a dict of lists (one per optimizer)."""
    schedulers = cfg.get('param_scheduler')
    if isinstance(schedulers, (list, tuple)):
        return True, False
    if isinstance(schedulers, dict) and 'type' not in schedulers:
        return False, True
    return False, False
