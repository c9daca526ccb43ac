"""--cfg-options over a resumed checkpoint: plan_resume_options sorts them,
ResumeOptionsHook applies them, resolve_resume puts the two together.

The tools end to end (a diverged run resumed with the printed remedy, a
refused option) are in tests/test_tools/test_resume_options.py.
"""
import logging
import re
from collections import Counter

import pytest
import torch
from engine_utils import cifar_loaders
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

import mmrevode  # noqa: F401
from mmrevode.engine import ResumeError, plan_resume_options
from mmrevode.engine.resume import resume_hook_config
from mmrevode.engine.launcher import resolve_resume


class _Record(Hook):
    """What the optimizer and the schedulers hold when training starts."""
    priority = 'LOWEST'

    def before_train(self, runner):
        wrapper = runner.optim_wrapper
        self.groups = [dict(g) for g in wrapper.optimizer.param_groups]
        self.base = dict(wrapper.base_param_settings)
        self.schedulers = [s.state_dict() for s in runner.param_schedulers]

    def after_train(self, runner):
        self.last_lr = runner.optim_wrapper.optimizer.param_groups[0]['lr']
        self.final = [s.state_dict() for s in runner.param_schedulers]


def _runner(work_dir, data_root, max_epochs, lr=0.1, weight_decay=1e-4,
            momentum=0.9, milestones=(1, ), hooks=(), **kwargs):
    loader, val_loader = cifar_loaders(data_root, batch_size=10)
    return Runner(
        model=dict(
            type='ImageClassifier',
            backbone=dict(
                type='HamiltonianNet', arch=dict(blocks=[1], widths=[8])),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=10, in_channels=8),
            data_preprocessor=dict(
                type='ClsDataPreprocessor', mean=[128] * 3, std=[64] * 3)),
        work_dir=str(work_dir),
        train_dataloader=loader,
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        # several parameter groups: no decay on norms and biases
        optim_wrapper=dict(
            optimizer=dict(type='SGD', lr=lr, momentum=momentum,
                           weight_decay=weight_decay),
            paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0.)),
        param_scheduler=dict(
            type='MultiStepLR', by_epoch=True, milestones=list(milestones),
            gamma=0.1),
        default_hooks=dict(
            logger=dict(type='LoggerHook', interval=100),
            checkpoint=dict(type='SafeCheckpointHook', interval=1)),
        custom_hooks=list(hooks),
        default_scope='mmpretrain',
        randomness=dict(seed=0),
        experiment_name=f'resume_{work_dir.name}',
        **kwargs)


@pytest.fixture(scope='module')
def two_epochs(tmp_path_factory, data_root):
    """A run of 2 epochs, lr 0.1 divided by 10 after the first."""
    work_dir = tmp_path_factory.mktemp('two_epochs')
    _runner(work_dir, data_root, max_epochs=2).train()
    return work_dir / 'epoch_2.pth'


def _resume(tmp_path, data_root, checkpoint, options=(), **kwargs):
    record = _Record()
    hooks = [record]
    # the config of the resumed run, as _runner builds it: a scheduler
    # without an end of its own, 3 epochs
    cfg = Config(dict(param_scheduler=dict(type='MultiStepLR'),
                      train_cfg=dict(max_epochs=3)))
    plan = plan_resume_options(dict(options), cfg, 0, str(checkpoint))
    hook = resume_hook_config(plan)
    if hook is not None:
        hooks.append(hook)
    runner = _runner(tmp_path, data_root, max_epochs=3, hooks=hooks,
                     resume=True, load_from=str(checkpoint), **kwargs)
    messages = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: messages.append(record.getMessage())
    runner.logger.addHandler(handler)
    try:
        runner.train()
    finally:
        runner.logger.removeHandler(handler)
    return record, [m for m in messages if m.startswith('Resuming:')]


END_FOLLOWS = ('Resuming: param_scheduler end 2 from the checkpoint replaced '
               'by 3, which the length of training (train_cfg.max_epochs=3) '
               'sets for a scheduler without its own end.')


def test_without_options_the_checkpoint_wins(tmp_path, data_root,
                                             two_epochs):
    """The config's lr 0.01 is not an option: the checkpoint's state (0.1,
    divided by 10 once) is continued, as MMEngine does."""
    record, messages = _resume(tmp_path, data_root, two_epochs, lr=0.01)
    assert messages == [END_FOLLOWS]
    assert record.groups[0]['initial_lr'] == 0.1
    assert record.groups[0]['lr'] == pytest.approx(0.01)
    assert record.last_lr == pytest.approx(0.01)  # no milestone left


def test_lr_option_is_the_new_base(tmp_path, data_root, two_epochs):
    record, messages = _resume(
        tmp_path, data_root, two_epochs,
        options={'optim_wrapper.optimizer.lr': 0.01}, lr=0.01)
    # the base is 0.01; the schedule had divided it by 10 once: 0.001
    for group in record.groups:
        assert group['initial_lr'] == 0.01
        assert group['lr'] == pytest.approx(0.001)
    assert record.base['lr'] == pytest.approx(0.001)
    (scheduler, ) = record.schedulers
    assert scheduler['base_values'] == pytest.approx(
        [0.01] * (len(record.groups) + 1))
    # one step replayed: the 2-epoch run's scheduler ended after epoch 1
    saved = torch.load(two_epochs, weights_only=False)  # made here
    assert scheduler['last_step'] == saved['param_schedulers'][0][
        'last_step'] + 1
    assert messages == [
        'Resuming: lr 0.1 from the checkpoint replaced by 0.01 from '
        '--cfg-options (optim_wrapper.optimizer.lr) as the base value; the '
        'current lr 0.01 becomes 0.001.', END_FOLLOWS
    ]


def test_weight_decay_and_momentum_options(tmp_path, data_root, two_epochs):
    record, messages = _resume(
        tmp_path, data_root, two_epochs,
        options={'optim_wrapper.optimizer.weight_decay': 5e-3,
                 'optim_wrapper.optimizer.momentum': 0.5,
                 'optim_wrapper.optimizer.lr': 0.1},
        weight_decay=5e-3, momentum=0.5)
    decays = sorted({g['weight_decay'] for g in record.groups})
    assert decays == [0.0, 5e-3]  # norms and biases keep no decay
    assert {g['momentum'] for g in record.groups} == {0.5}
    assert record.groups[0]['lr'] == pytest.approx(0.01)
    groups = len(record.groups)
    decayed = sum(g['weight_decay'] > 0 for g in record.groups)
    assert messages == [
        'Resuming: weight_decay 0.0001 from the checkpoint replaced by 0.005 '
        'from --cfg-options (optim_wrapper.optimizer.weight_decay) (in '
        f'{decayed} of {groups} parameter groups).',
        'Resuming: momentum 0.9 from the checkpoint replaced by 0.5 from '
        '--cfg-options (optim_wrapper.optimizer.momentum).',
        'Resuming: lr from --cfg-options (optim_wrapper.optimizer.lr) equals '
        "the checkpoint's; nothing replaced.", END_FOLLOWS
    ]


def test_scheduler_option(tmp_path, data_root, two_epochs):
    """New milestones, and a longer run: the step that the checkpoint's
    scheduler skipped at its old end is replayed, so epoch 3 trains as in
    a run of 3 epochs with milestones [1, 2] from the start."""
    record, messages = _resume(
        tmp_path, data_root, two_epochs,
        options={'param_scheduler.milestones': [1, 2]}, milestones=(1, 2))
    (scheduler, ) = record.schedulers
    assert scheduler['milestones'] == Counter([1, 2])
    assert scheduler['end'] == 3 and scheduler['last_step'] == 2
    assert messages == [
        'Resuming: param_scheduler milestones [1] from the checkpoint '
        'replaced by [1, 2] from --cfg-options (param_scheduler.milestones).',
        'Resuming: MultiStepLR replayed 1 step(s) that the old end 2 had '
        'skipped: lr times 0.1.', END_FOLLOWS
    ]
    straight = _Record()
    _runner(tmp_path / 'straight', data_root, max_epochs=3,
            milestones=(1, 2), hooks=[straight]).train()
    assert record.groups[0]['lr'] == pytest.approx(0.001)
    assert record.last_lr == pytest.approx(straight.last_lr)
    for key in ('last_step', '_global_step', 'end'):
        assert record.final[0][key] == straight.final[0][key], key
    assert record.final[0]['_last_value'] == pytest.approx(
        straight.final[0]['_last_value'])


@pytest.mark.parametrize('options,message', [
    ({'randomness.seed': 1}, 'was trained with seed 0'),
    ({'optim_wrapper.optimizer.type': 'Adam'},
     'which another optimizer cannot continue'),
    ({'param_scheduler.by_epoch': False},
     "'by_epoch' decides which scheduler it is"),
    ({'param_scheduler': dict(type='StepLR')}, 'one by one'),
])
def test_refused_options(options, message):
    with pytest.raises(ResumeError, match=message) as info:
        plan_resume_options(options, Config(dict()), 0, 'x.pth')
    assert '\n' not in str(info.value)
    assert re.search(r'[Ss]tart a new run (instead )?\(without --resume',
                     str(info.value))


def test_plan_keeps_to_what_a_resume_overrides():
    plan = plan_resume_options(
        {'randomness.seed': 0, 'train_cfg.max_epochs': 9,
         '+optim_wrapper.optimizer.lr': 0.5,
         'optim_wrapper.paramwise_cfg.norm_decay_mult': 1.0,
         'param_scheduler.1.gamma': 0.5},
        Config(dict(param_scheduler=[dict(type='LinearLR', end=5),
                                     dict(type='MultiStepLR')],
                    train_cfg=dict(max_epochs=9))), 0, 'x.pth')
    assert plan['optimizer'] == dict(lr=0.5, weight_decay=None)
    # the second scheduler, without an end, follows the training's length
    assert plan['schedulers'] == [
        [1, 'gamma', 0.5, 'param_scheduler.1.gamma'],
        [1, 'end', None, 'train_cfg.max_epochs=9', True],
        [1, 'T_max', None, 'train_cfg.max_epochs=9', True]]
    with pytest.raises(ResumeError, match='one optimizer only'):
        plan_resume_options({'param_scheduler.gamma': 0.5}, Config(dict(
            param_scheduler=dict(a=[], b=[]))), 0, 'x.pth')


def test_resolve_resume_adds_the_hook(tmp_path):
    work_dir = tmp_path / 'work'
    work_dir.mkdir()
    torch.save(dict(meta=dict(seed=3), state_dict={}),
               work_dir / 'epoch_1.pth')
    (work_dir / 'last_checkpoint').write_text('epoch_1.pth')
    options = {'optim_wrapper.optimizer.lr': 0.01}
    # resume=True in the config is resolved in the same place as --resume
    cfg = Config(dict(work_dir=str(work_dir), resume=True,
                      randomness=dict(seed=None), custom_hooks=[]))
    assert resolve_resume(cfg, None, options) == str(work_dir / 'epoch_1.pth')
    assert cfg.load_from == str(work_dir / 'epoch_1.pth')
    assert cfg.randomness.seed == 3
    (hook, ) = cfg.custom_hooks
    assert hook['type'] == 'ResumeOptionsHook'
    assert hook['optimizer'] == dict(lr=0.01)
    # without a resume the options are the config's, no hook
    cfg = Config(dict(work_dir=str(work_dir), custom_hooks=[]))
    assert resolve_resume(cfg, None, options) is None
    assert cfg.custom_hooks == []
    cfg = Config(dict(work_dir=str(work_dir), randomness=dict(seed=None)))
    with pytest.raises(ResumeError, match='trained with seed 3'):
        resolve_resume(cfg, 'auto', {'randomness.seed': 4})


def _scheduler_states(scheduler_type, end, steps, **kwargs):
    """A fresh wrapper and scheduler of ``end`` steps, and the checkpoint
    state of one that had ``end`` too and was stepped ``steps`` times."""
    from mmengine.optim import OptimWrapper
    from mmengine.registry import PARAM_SCHEDULERS

    def build(end):
        model = torch.nn.Linear(2, 2)
        wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
        scheduler = PARAM_SCHEDULERS.build(
            dict(type=scheduler_type, end=end, **kwargs),
            default_args=dict(optimizer=wrapper))
        return wrapper, scheduler

    wrapper, scheduler = build(2)
    for _ in range(steps):
        wrapper.optimizer.step()
        scheduler.step()
    checkpoint = dict(optimizer=wrapper.state_dict(),
                      param_schedulers=[scheduler.state_dict()])
    fresh_wrapper, fresh = build(end)
    from types import SimpleNamespace
    runner = SimpleNamespace(optim_wrapper=fresh_wrapper,
                             param_schedulers=[fresh])
    return runner, checkpoint


def _hook(*names):
    from mmrevode.engine import ResumeOptionsHook
    return ResumeOptionsHook(schedulers=[
        [0, name, None, 'train_cfg.max_epochs=3', True] for name in names])


def test_longer_training_replays_step_schedules():
    runner, checkpoint = _scheduler_states('StepLR', 3, 2, step_size=2,
                                           gamma=0.5)
    _hook('end', 'T_max').after_load_checkpoint(runner, checkpoint)
    (state, ) = checkpoint['param_schedulers']
    assert state['end'] == 3 and state['last_step'] == 2
    assert checkpoint['optimizer']['param_groups'][0]['lr'] == \
        pytest.approx(0.05)  # the step at 2 that the old end skipped


@pytest.mark.parametrize('scheduler_type,steps,kwargs,message', [
    # within its old end: the curve would change shape mid-run
    ('CosineAnnealingLR', 1, {}, 'stretches its curve over it'),
    # past its old end: the skipped steps have no closed form here
    ('CosineAnnealingLR', 2, {}, 'skipped 1 steps that a resumed run '
     'cannot replay'),
    ('LinearLR', 2, dict(start_factor=0.5), 'cannot replay'),
])
def test_longer_training_refused_where_it_cannot_be_exact(
        scheduler_type, steps, kwargs, message):
    runner, checkpoint = _scheduler_states(scheduler_type, 3, steps,
                                           **kwargs)
    with pytest.raises(ResumeError, match=message) as info:
        _hook('end', 'T_max').after_load_checkpoint(runner, checkpoint)
    assert 'train_cfg.max_epochs=3' in str(info.value)


def test_new_best_rule_drops_the_recorded_best():
    from mmrevode.engine import ResumeOptionsHook
    plan = plan_resume_options(
        {'default_hooks.checkpoint.rule': 'less'}, Config(dict()), 0, 'x')
    assert plan['reset_best'] == 'default_hooks.checkpoint.rule'
    checkpoint = dict(message_hub=dict(runtime_info=dict(
        best_score=93.5, best_ckpt='w/best_accuracy_top1_epoch_3.pth',
        keep_ckpt_ids=[3])))
    ResumeOptionsHook(reset_best=plan['reset_best']).after_load_checkpoint(
        None, checkpoint)
    assert checkpoint['message_hub']['runtime_info'] == dict(
        keep_ckpt_ids=[3])
