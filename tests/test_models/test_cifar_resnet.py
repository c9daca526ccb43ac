"""The CIFAR ResNets of He et al. (2016)."""
import pytest
import torch
from mmpretrain.models.backbones import ResNet, ResNet_CIFAR
from mmpretrain.models.backbones.resnet import BasicBlock
from mmpretrain.registry import MODELS
from torch import nn

from mmrevode.models import CifarResNet
from mmrevode.models.backbones import PadShortcut


def num_params(module):
    return sum(p.numel() for p in module.parameters())


# Backbone parameters with option-A shortcuts (no classifier head).
PARAMS = {20: 269072, 32: 463504, 44: 657936, 56: 852368, 110: 1727312}


@pytest.mark.parametrize('depth', sorted(PARAMS))
def test_depths_params_and_layout(depth):
    model = CifarResNet(depth)
    assert num_params(model) == PARAMS[depth]
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) + 1 == depth  # + the classifier
    n = (depth - 2) // 6
    for name, width in zip(model.res_layers, (16, 32, 64)):
        layer = getattr(model, name)
        assert len(layer) == n
        assert all(isinstance(b, BasicBlock) for b in layer)
        assert layer[-1].conv2.out_channels == width


def test_forward_shapes_and_out_indices():
    model = CifarResNet(20, out_indices=(0, 1, 2)).eval()
    outs = model(torch.randn(2, 3, 16, 16))
    assert [tuple(o.shape) for o in outs] == [(2, 16, 16, 16),
                                              (2, 32, 8, 8), (2, 64, 4, 4)]
    outs = CifarResNet(20)(torch.randn(2, 3, 16, 16))
    assert len(outs) == 1 and outs[0].shape == (2, 64, 4, 4)
    outs = CifarResNet(20, out_indices=-2)(torch.randn(2, 3, 16, 16))
    assert outs[0].shape == (2, 32, 8, 8)


def test_option_a_shortcut_pads_zeros_and_option_b_projects():
    shortcut = PadShortcut(4, 8, stride=2)
    x = torch.randn(1, 4, 6, 6)
    out = shortcut(x)
    assert out.shape == (1, 8, 3, 3)
    assert torch.equal(out[:, 2:6], x[:, :, ::2, ::2])
    assert torch.count_nonzero(out[:, :2]) == 0
    assert torch.count_nonzero(out[:, 6:]) == 0
    model_a = CifarResNet(20)
    assert isinstance(model_a.layer2[0].downsample, PadShortcut)
    assert model_a.layer1[0].downsample is None
    model_b = CifarResNet(20, shortcut='B')
    projection = model_b.layer2[0].downsample
    assert isinstance(projection[0], nn.Conv2d)
    assert projection[0].stride == (2, 2)
    assert num_params(model_b) == PARAMS[20] + (16 * 32 + 2 * 32) + (
        32 * 64 + 2 * 64)


def test_frozen_stages_norm_eval_and_registry():
    model = MODELS.build(
        dict(type='CifarResNet', depth=20, frozen_stages=1, norm_eval=True))
    assert isinstance(model, CifarResNet)
    model.train()
    frozen = [model.conv1, model.norm1, model.layer1]
    assert not any(p.requires_grad for m in frozen for p in m.parameters())
    assert all(p.requires_grad for p in model.layer2.parameters())
    assert not model.layer1.training and model.layer2.training
    assert not any(m.training for m in model.modules()
                   if isinstance(m, nn.BatchNorm2d))
    model(torch.randn(2, 3, 8, 8))[0].sum().backward()
    assert model.conv1.weight.grad is None
    assert model.layer3[0].conv1.weight.grad is not None


def test_init_weights_and_zero_init_residual():
    model = CifarResNet(20, zero_init_residual=True)
    model.init_weights()
    assert all(
        torch.count_nonzero(b.norm2.weight) == 0 for name in model.res_layers
        for b in getattr(model, name))
    model = CifarResNet(20)
    model.init_weights()
    assert torch.equal(model.layer1[0].norm2.weight, torch.ones(16))


def test_builds_on_mmpretrain_resnet_with_its_names():
    model = CifarResNet(20)
    assert isinstance(model, ResNet_CIFAR) and isinstance(model, ResNet)
    assert model.stage_blocks == (3, 3, 3) and model.feat_dim == 64
    assert not hasattr(model, 'maxpool')
    names = [k for k in model.state_dict() if k != '_extra_state']
    assert names[:3] == ['conv1.weight', 'bn1.weight', 'bn1.bias']
    assert 'layer3.2.bn2.running_var' in names
    assert 'layer2.0.downsample.0.weight' in CifarResNet(
        20, shortcut='B').state_dict()
    assert CifarResNet(20).train() is not None  # returns the module
    assert CifarResNet(8, act_cfg=dict(type='SiLU')).relu.__class__ is \
        nn.SiLU


@pytest.mark.parametrize('kwargs, match', [
    (dict(depth=18), '6n \\+ 2'),
    (dict(depth=2), '6n \\+ 2'),
    (dict(depth=20, shortcut='C'), 'shortcut'),
    (dict(depth=20, out_indices=3), 'out_indices'),
    (dict(depth=20, frozen_stages=4), 'frozen_stages'),
    (dict(depth=20, num_stages=5), r'num_stages must be an int in \[1, 4\]'),
])
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CifarResNet(**kwargs)
