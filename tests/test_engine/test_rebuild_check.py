"""RebuildCheckHook: the backward's rebuilt pairs against the forward's."""
import os.path as osp
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.runner import Runner
from torch import nn

from engine_utils import cifar_loaders
from mmrevode.datasets import write_cifar10
from mmrevode.engine import (RebuildCheckHook, RebuildMismatchError,
                             reversible_units)
from mmrevode.models.blocks import HamiltonianBlock
from mmrevode.models.reversible import ReversibleSequence, ShiftStep
from mmrevode.models.blocks.pairs import ChannelHalvesBlock


class DropoutBlock(ChannelHalvesBlock):
    """A Hamiltonian-like block whose F draws random numbers (dropout)."""

    def build_functions(self, channels, norm_cfg, act_cfg):
        half = self.half_channels(channels)
        self.f = nn.Sequential(
            nn.Conv2d(half, half, 3, padding=1), nn.Dropout(0.5))

    def shift_steps(self):
        return [ShiftStep(self.f, 1.0, 0.0, self.h)]


class TwoUnits(nn.Module):

    def __init__(self, block, exact, preserve_rng_state=False):
        super().__init__()
        torch.manual_seed(0)
        self.units = nn.ModuleList(
            ReversibleSequence([block(8) for _ in range(3)],
                               preserve_rng_state=preserve_rng_state,
                               exact=exact) for _ in range(2))

    def forward(self, x):
        for unit in self.units:
            x = unit(x)
        return x


def fake_runner(model):
    return SimpleNamespace(
        model=model, iter=0,
        message_hub=MessageHub.get_instance('rebuild_check_test'))


def train_iters(hook, runner, iters):
    for i in range(iters):
        runner.iter = i
        hook.before_train_iter(runner, i)
        x = torch.randn(2, 8, 6, 6, requires_grad=True)
        runner.model(x).square().sum().backward()
        hook.after_train_iter(runner, i)
        runner.iter = i + 1


def test_reversible_units_round_robin():
    model = TwoUnits(HamiltonianBlock, exact=True)
    model.units[1].mode = 'plain'  # rebuilds nothing: not checked
    assert [name for name, _ in reversible_units(model)] == ['units.0']
    model.units[1].mode = 'reversible'
    hook, runner = RebuildCheckHook(interval=2), fake_runner(model)
    probed = []
    for i in range(4):
        runner.iter = i
        hook.before_train_iter(runner, i)
        probed.append(hook._probe[0] if hook._probe else None)
        hook.after_train_iter(runner, i)
    assert probed == [None, 'units.0', None, 'units.1']


@pytest.mark.parametrize('exact', [True, False])
def test_deterministic_units_pass(exact):
    hook = RebuildCheckHook(interval=1)
    runner = fake_runner(TwoUnits(HamiltonianBlock, exact=exact))
    train_iters(hook, runner, 2)
    error = runner.message_hub.get_scalar('train/rebuild_error').current()
    assert error == 0 if exact else error < 1e-5


def test_random_step_without_replay_is_caught_in_exact_mode():
    hook = RebuildCheckHook(interval=1)
    runner = fake_runner(TwoUnits(DropoutBlock, exact=True))
    with pytest.raises(RebuildMismatchError,
                       match=r'units\.0 \(exact=True\).*not recomputed bit '
                       r'for bit.*preserve_rng_state=True'):
        train_iters(hook, runner, 1)
    # with the generator replayed, the same units rebuild exactly
    runner = fake_runner(
        TwoUnits(DropoutBlock, exact=True, preserve_rng_state=True))
    train_iters(hook, runner, 2)


def test_random_step_without_replay_warns_in_float_mode():
    hook = RebuildCheckHook(interval=1, tolerance=1e-4)
    runner = fake_runner(TwoUnits(DropoutBlock, exact=False))
    with pytest.warns(UserWarning, match=r'units\.0: the backward rebuilt '
                      r'its input pair with a relative error of'):
        train_iters(hook, runner, 1)
    assert runner.message_hub.get_scalar(
        'train/rebuild_error').current() > 1e-4


def test_bad_arguments():
    with pytest.raises(ValueError, match='interval'):
        RebuildCheckHook(interval=0)
    with pytest.raises(ValueError, match='tolerance'):
        RebuildCheckHook(tolerance=-1)


def test_in_a_runner(tmp_path):
    """Registered, and in a Runner's loop it logs the scalar."""
    root = str(tmp_path / 'cifar')
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    write_cifar10(root, images, np.arange(8) % 10, images[:4], np.arange(4))
    loader, _ = cifar_loaders(root, batch_size=4)
    runner = Runner(
        model=dict(
            type='ImageClassifier',
            backbone=dict(
                type='HamiltonianNet',
                arch=dict(blocks=[2, 2], widths=[8, 16]),
                exact=True),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=10, in_channels=16),
            data_preprocessor=dict(
                type='ClsDataPreprocessor', mean=[128] * 3, std=[64] * 3)),
        work_dir=str(tmp_path / 'work'),
        train_dataloader=loader,
        train_cfg=dict(by_epoch=True, max_epochs=1),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        default_hooks=dict(logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=[dict(type='RebuildCheckHook', interval=1)],
        default_scope='mmpretrain',
        randomness=dict(seed=0),
        experiment_name=f'rebuild_check_{osp.basename(str(tmp_path))}')
    runner.train()
    history = runner.message_hub.get_scalar('train/rebuild_error')
    assert list(history.data[0]) == [0.0, 0.0]
