"""A resumed checkpoint's optimizer and scheduler states must fit what the
config built: MMEngine copies any attribute they name into the objects."""
import copy

import pytest
import torch
from engine_utils import ToyRegression
from mmengine.optim.scheduler import MultiStepLR, StepLR
from mmengine.runner import Runner
from torch.utils.data import TensorDataset

import mmrevode  # noqa: F401
from mmrevode.engine import ResumeStateError
from mmrevode.engine.resume_state import (check_optimizer_state,
                                          check_scheduler_states)


def _built():
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9,
                                weight_decay=1e-4)
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    schedulers = [StepLR(optimizer, step_size=2, gamma=0.1),
                  MultiStepLR(optimizer, milestones=[3, 6], gamma=0.5)]
    states = [{k: v for k, v in vars(s).items() if k != 'optimizer'}
              for s in schedulers]
    return optimizer, schedulers, copy.deepcopy(states)


def test_own_states_fit():
    optimizer, schedulers, states = _built()
    check_scheduler_states(schedulers, states)
    check_optimizer_state(optimizer, optimizer.state_dict())


@pytest.mark.parametrize('change, phrase', [
    (lambda s: s[0].update(param_name='weight_decay', gamma=1e6),
     'param_name'),
    (lambda s: s[1].update(step=0), "sets ['step']"),
    (lambda s: s[0].update(by_epoch=False), 'by_epoch'),
    (lambda s: s[1].update(milestones='3,6'), 'milestones of kind str'),
    (lambda s: s.pop(), 'holds 1 parameter schedulers'),
    (lambda s: s.__setitem__(0, 'x'), 'is not a dict'),
])
def test_scheduler_states_that_do_not_fit(change, phrase):
    _, schedulers, states = _built()
    change(states)
    with pytest.raises(ResumeStateError, match=phrase.replace('[', r'\[')
                       .replace(']', r'\]')):
        check_scheduler_states(schedulers, states)


@pytest.mark.parametrize('change, phrase', [
    (lambda s: s['param_groups'][0].update(maximize=True), 'maximize=True'),
    (lambda s: s['param_groups'][0].update(nesterov=True), 'nesterov'),
    (lambda s: s['param_groups'][0].update(lr=float('nan')), 'not a finite'),
    (lambda s: s['param_groups'][0].update(evil=1), 'keys that SGD'),
    (lambda s: s['param_groups'][0].update(params=[0, 1, 2]),
     'other parameters'),
    (lambda s: s['state'].update({7: {}}), 'parameter 7'),
    (lambda s: s['state'][0].update(momentum_buffer=torch.zeros(5)),
     'shape'),
    (lambda s: s['param_groups'].append({}), '2 parameter groups'),
])
def test_optimizer_states_that_do_not_fit(change, phrase):
    optimizer, _, _ = _built()
    state = copy.deepcopy(optimizer.state_dict())
    change(state)
    with pytest.raises(ResumeStateError, match=phrase):
        check_optimizer_state(optimizer, state)


def _runner(work_dir, **kwargs):
    return Runner(
        model=ToyRegression(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=TensorDataset(torch.randn(8, 2), torch.randn(8, 1)),
            batch_size=4,
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='default_collate')),
        train_cfg=dict(by_epoch=True, max_epochs=2),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        param_scheduler=dict(type='MultiStepLR', milestones=[1]),
        default_hooks=dict(checkpoint=dict(type='SafeCheckpointHook',
                                           interval=1)),
        experiment_name=f'resume_state_{work_dir.name}',
        # SafeCheckpointHook names the file loaded from the run's config,
        # as Runner.from_cfg passes it
        cfg=dict(load_from=kwargs.get('load_from'),
                 resume=kwargs.get('resume', False)),
        **kwargs)


def test_resume_refuses_a_scheduler_state_that_drives_something_else(
        tmp_path):
    """Through Runner.resume: the check runs before MMEngine copies the
    states into the scheduler and the optimizer."""
    _runner(tmp_path / 'a', ).train()
    path = tmp_path / 'a' / 'epoch_1.pth'
    checkpoint = torch.load(path, weights_only=False)  # made here
    checkpoint['param_schedulers'][0]['param_name'] = 'weight_decay'
    torch.save(checkpoint, tmp_path / 'crafted.pth')
    runner = _runner(tmp_path / 'b', load_from=str(tmp_path / 'crafted.pth'),
                     resume=True)
    with pytest.raises(ResumeStateError, match='crafted.pth cannot be '
                       'resumed: its parameter scheduler 0'):
        runner.train()
    assert runner.optim_wrapper.param_groups[0]['weight_decay'] == 0


def test_scheduler_configs_are_not_checked():
    """A test run has scheduler configs, not schedulers: nothing to check."""
    from mmrevode.engine.resume_state import check_resume_state

    class Runner:
        optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1))
        param_schedulers = dict(type='MultiStepLR', by_epoch=True,
                                milestones=[1])

    check_resume_state(Runner(), dict(param_schedulers=[dict(x=1)],
                                      optimizer={}), 'x.pth')


def test_optimizer_state_tensors_are_plain_and_unshared():
    """The optimizer keeps the file's state tensors and updates them in
    place: two parameters sharing one buffer, or a buffer whose elements
    alias one cell, would change the update rule."""
    optimizer, _, _ = _built()
    state = copy.deepcopy(optimizer.state_dict())
    state['state'][1]['momentum_buffer'] = state['state'][0][
        'momentum_buffer'][0, :2]
    with pytest.raises(ResumeStateError, match='shares its memory'):
        check_optimizer_state(optimizer, state)
    state = copy.deepcopy(optimizer.state_dict())
    state['state'][0]['momentum_buffer'] = torch.zeros(1).expand(2, 3)
    with pytest.raises(ResumeStateError, match='not a plain tensor'):
        check_optimizer_state(optimizer, state)
    state = copy.deepcopy(optimizer.state_dict())
    state['state'][0]['step'] = 'x'
    with pytest.raises(ResumeStateError, match='not a number'):
        check_optimizer_state(optimizer, state)


def test_loss_scaler_settings_are_the_configs():
    from mmengine.optim import AmpOptimWrapper

    from mmrevode.engine.resume_state import check_loss_scaler_state
    scaler = torch.amp.GradScaler('cpu', enabled=True)
    check_loss_scaler_state(scaler, scaler.state_dict())
    for key, value in (('growth_factor', -1e30), ('backoff_factor', 10.0),
                       ('growth_interval', 1)):
        with pytest.raises(ResumeStateError, match=key):
            check_loss_scaler_state(scaler,
                                    dict(scaler.state_dict(), **{key: value}))
    with pytest.raises(ResumeStateError, match='scale is not a number'):
        check_loss_scaler_state(scaler, dict(scaler.state_dict(),
                                             scale=float('inf')))
    assert AmpOptimWrapper  # the wrapper whose loss_scaler this is


@pytest.mark.parametrize('meta, phrase', [
    (dict(epoch='1'), 'epoch'), (dict(iter=-1), 'iter'),
    (dict(seed='x'), 'seed'), (dict(seed=2**40), 'seed'), ([1], 'not a dict')
])
def test_meta_counts_and_seed(meta, phrase):
    from mmrevode.engine.resume_state import check_meta
    with pytest.raises(ResumeStateError, match=phrase):
        check_meta(meta)
    check_meta(dict(epoch=3, iter=120, seed=0))
