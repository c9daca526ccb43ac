"""torch.compile of the model's modules, and the Runner hook that does it."""
import copy
import os

import numpy as np
import pytest
import torch
import torch._dynamo as dynamo
from engine_utils import cifar_loaders
from mmengine.config import Config
from mmengine.runner import Runner
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import mmrevode  # noqa: F401
from mmrevode.datasets import write_cifar10
from mmrevode.engine.compile import (ModelCompileHook, compile_model,
                                     use_compile_hook)
from mmrevode.models import HamiltonianNet

TINY = dict(blocks=[1, 1], widths=[8, 16])


def classifier(**backbone):
    torch.manual_seed(0)
    model = MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(type='HamiltonianNet', arch=TINY, **backbone),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=4, in_channels=16)))
    model.init_weights()
    return model.train()


def loss_and_grads(model, images, samples):
    model.zero_grad(set_to_none=True)
    losses = model(images, samples, mode='loss')
    loss = sum(losses.values())
    loss.backward()
    return loss.detach(), {n: p.grad for n, p in model.named_parameters()}


def relative_error(a, b):
    return ((a - b).norm() / b.norm()).item()


@pytest.fixture(autouse=True)
def fresh_dynamo():
    dynamo.reset()
    yield
    dynamo.reset()


@pytest.fixture
def batch():
    torch.manual_seed(1)
    images = torch.randn(6, 3, 16, 16)
    samples = [DataSample().set_gt_label(i % 4) for i in range(6)]
    return images, samples


@pytest.mark.parametrize('compile_steps, backend, exact',
                         [(False, 'inductor', False), (True, 'eager', False),
                          (False, 'aot_eager', True)])
def test_compiled_gradients_match_eager(batch, compile_steps, backend,
                                        exact):
    eager = classifier(exact=exact)
    compiled = copy.deepcopy(eager)
    names = compile_model(
        compiled, compile_steps=compile_steps, backend=backend)
    assert names[-3:] == ['backbone', 'neck', 'head']
    # one block per unit, two step functions per Hamiltonian block
    assert len(names) == 3 + (4 if compile_steps else 0)
    for _ in range(2):  # the second call runs the cached graphs
        loss_e, grads_e = loss_and_grads(eager, *batch)
        loss_c, grads_c = loss_and_grads(compiled, *batch)
        torch.testing.assert_close(loss_c, loss_e, rtol=1e-5, atol=1e-6)
        for name, grad in grads_e.items():
            assert relative_error(grads_c[name], grad) < 1e-5, name
    # same state_dict keys (checkpoints load either way), same buffers
    state_e, state_c = eager.state_dict(), compiled.state_dict()
    assert list(state_c) == list(state_e)
    for key in state_e:
        torch.testing.assert_close(state_c[key], state_e[key])


@pytest.mark.parametrize('exact', [False, True], ids=['float', 'exact'])
def test_the_reversible_function_stays_opaque(exact):
    """dynamo does not try to trace the Function (whose backward calls
    torch.autograd.grad): one graph break per unit, none inside."""
    torch.manual_seed(0)
    model = HamiltonianNet(
        arch=dict(blocks=[2, 2, 2], widths=[8, 16, 32]), exact=exact)
    explanation = dynamo.explain(model)(torch.randn(2, 3, 16, 16))
    reasons = [r.reason for r in explanation.break_reasons]
    assert reasons and all('disable' in r for r in reasons), reasons
    assert not any('autograd.grad' in r for r in reasons)
    assert explanation.graph_count <= 6
    # in eval mode the units are plain operations: one graph
    explanation = dynamo.explain(model.eval())(torch.randn(2, 3, 16, 16))
    assert explanation.graph_count == 1
    assert explanation.graph_break_count == 0


def test_use_compile_hook_replaces_mmengine_option():
    cfg = Config(dict(compile=True, custom_hooks=[dict(type='EpochSeedHook')]))
    use_compile_hook(cfg)
    assert 'compile' not in cfg
    assert cfg.custom_hooks == [
        dict(type='EpochSeedHook'),
        dict(type='ModelCompileHook')
    ]
    cfg = Config(dict(compile=dict(backend='eager', targets=['backbone'])))
    use_compile_hook(cfg)
    assert cfg.custom_hooks == [
        dict(type='ModelCompileHook', backend='eager', targets=['backbone'])
    ]
    use_compile_hook(cfg)  # idempotent
    assert len(cfg.custom_hooks) == 1
    cfg = Config(dict(compile=False))
    assert 'custom_hooks' not in use_compile_hook(cfg) and 'compile' not in cfg
    cfg = Config(dict(a=1))
    assert use_compile_hook(cfg).to_dict() == dict(a=1)
    with pytest.raises(TypeError, match='must be a bool or a dict'):
        use_compile_hook(Config(dict(compile='yes')))


def test_bad_target_is_one_clear_error():
    model = classifier()
    model.extra = 3
    with pytest.raises(TypeError, match='model.extra is a int'):
        compile_model(model, targets=['extra'])
    assert compile_model(model, targets=['missing'], backend='eager') == []


def test_runner_trains_with_compile_true(tmp_path):
    """MMEngine's ``compile`` key in a config, through the hook: an epoch of
    training and validation, a checkpoint with the usual keys. (AOTAutograd
    without code generation, to keep the test fast; the inductor backend of
    ``compile=True`` is checked on gradients above.)"""
    root = str(tmp_path / 'data')
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (12, 32, 32, 3), dtype=np.uint8)
    write_cifar10(root, images, np.arange(12) % 4, images[:6],
                  np.arange(6) % 4)
    loader, val_loader = cifar_loaders(root, batch_size=6)
    cfg = Config(
        dict(
            model=dict(
                type='ImageClassifier',
                backbone=dict(type='HamiltonianNet', arch=TINY),
                neck=dict(type='GlobalAveragePooling'),
                head=dict(
                    type='LinearClsHead', num_classes=10, in_channels=16),
                data_preprocessor=dict(
                    type='ClsDataPreprocessor',
                    mean=[128] * 3,
                    std=[64] * 3)),
            work_dir=str(tmp_path / 'work'),
            train_dataloader=loader,
            val_dataloader=val_loader,
            val_evaluator=dict(type='Accuracy', topk=(1, )),
            train_cfg=dict(by_epoch=True, max_epochs=1, val_interval=1),
            val_cfg=dict(),
            optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
            default_hooks=dict(
                logger=dict(type='LoggerHook', interval=1),
                checkpoint=dict(type='CheckpointHook', interval=1)),
            default_scope='mmpretrain',
            randomness=dict(seed=0),
            compile=dict(backend='aot_eager'),
            experiment_name='compile_hook'))
    runner = Runner.from_cfg(use_compile_hook(cfg))
    assert any(isinstance(h, ModelCompileHook) for h in runner.hooks)
    runner.train()
    model = runner.model
    assert model.backbone._compiled_call_impl is not None
    assert model.head._compiled_call_impl is not None
    # MMEngine's own compile of train_step did not happen
    assert 'train_step' not in vars(model)
    files = os.listdir(tmp_path / 'work')
    assert 'epoch_1.pth' in files
    state = torch.load(
        tmp_path / 'work' / 'epoch_1.pth', weights_only=False)['state_dict']
    assert set(state) == set(classifier().state_dict())
    assert all(torch.isfinite(v).all() for v in state.values()
               if v.is_floating_point())
