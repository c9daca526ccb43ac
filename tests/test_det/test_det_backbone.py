"""The backbones in the detection setting: ImageNet stem, four units,
frozen stages with the reversible backward, and loading a classification
checkpoint of tools/train.py with ``init_cfg=dict(type='Pretrained')``.

These need MMPretrain only, not MMDetection."""
import copy

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch.nn.modules.batchnorm import _BatchNorm

import mmrevode  # noqa: F401
from det_utils import CLS_CONFIG, config_path
from mmrevode.models import HamiltonianNet, LeapfrogNet, MidpointNet

# Four units at strides 4, 8, 16, 32, small enough for float64 on a CPU.
SMALL_DET = dict(blocks=[2, 2, 2, 2], widths=[8, 16, 32, 64])


def relative_error(a, b):
    return ((a - b).norm() / b.norm()).item()


def test_det_presets_give_strides_4_to_32():
    model = HamiltonianNet(
        arch='det-38', stem_type='imagenet', out_indices=(0, 1, 2, 3))
    assert model.blocks == [3, 3, 3, 3]
    assert model.widths == [64, 128, 256, 512]
    assert HamiltonianNet(arch='det-74').blocks == [6, 6, 6, 6]
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 96, 128))
    assert [tuple(o.shape) for o in outs] == [(1, 64, 24, 32),
                                            (1, 128, 12, 16),
                                            (1, 256, 6, 8), (1, 512, 3, 4)]


def det_backbone(cls, frozen_stages, norm_eval, reversible=True,
                 exact=False):
    torch.manual_seed(0)
    model = cls(
        arch=SMALL_DET,
        stem_type='imagenet',
        out_indices=(0, 1, 2, 3),
        frozen_stages=frozen_stages,
        norm_eval=norm_eval,
        mode='reversible' if reversible else 'plain',
        exact=exact).double()
    model.init_weights()
    # Non-trivial running statistics, so that eval-mode norms matter.
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, _BatchNorm):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return model.train()


@pytest.mark.parametrize('cls', [HamiltonianNet, MidpointNet, LeapfrogNet])
@pytest.mark.parametrize('frozen_stages,norm_eval,exact',
                         [(-1, False, False), (0, False, False),
                          (1, True, False), (2, False, False),
                          (3, True, False), (0, False, True),
                          (2, True, True)])
def test_frozen_stages_with_the_reversible_backward(cls, frozen_stages,
                                                    norm_eval, exact):
    """Frozen stem (the first unit's input needs no grad) and frozen units
    (whole units without parameters to train): the reversible backward gives
    plain autograd's gradients, frozen parameters get none, frozen modules
    stay in eval mode and keep their running statistics; also in exact
    mode (fixed-point pairs)."""
    model = det_backbone(cls, frozen_stages, norm_eval, exact=exact)
    plain = copy.deepcopy(model)
    plain.set_mode('plain')
    plain.train()
    frozen = [model.stem] + list(model.units[:frozen_stages]) \
        if frozen_stages >= 0 else []
    for module in frozen:
        assert not any(m.training for m in module.modules())
    if norm_eval:
        assert not any(m.training for m in model.modules()
                       if isinstance(m, _BatchNorm))
    buffers = copy.deepcopy(dict(model.named_buffers()))

    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        weights = [torch.randn_like(o) for o in plain(x)]
    plain.load_state_dict(model.state_dict())  # undo that forward's stats
    for net in (model, plain):
        outs = net(x)
        sum((o * w).sum() for o, w in zip(outs, weights)).backward()

    prefixes = (['stem.'] if frozen_stages >= 0 else []) + \
        [f'units.{i}.' for i in range(max(frozen_stages, 0))]
    plain_params = dict(plain.named_parameters())
    for name, param in model.named_parameters():
        if name.startswith(tuple(prefixes)):
            assert not param.requires_grad and param.grad is None, name
            assert plain_params[name].grad is None, name
        else:
            assert param.requires_grad and param.grad is not None, name
            assert relative_error(param.grad,
                                  plain_params[name].grad) < 1e-8, name
    for name, value in model.named_buffers():
        if name.endswith(('running_mean', 'running_var')) and (
                norm_eval or name.startswith(tuple(prefixes))):
            assert torch.equal(value, buffers[name]), name


def test_everything_frozen_still_passes_gradients_to_the_input():
    model = det_backbone(HamiltonianNet, frozen_stages=4, norm_eval=True)
    plain = copy.deepcopy(model)
    plain.set_mode('plain')
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    grads = []
    for net in (model, plain):
        xr = x.clone().requires_grad_()
        sum(o.sum() for o in net(xr)).backward()
        grads.append(xr.grad)
    # Only the output norms, which frozen_stages leaves alone (as ResNet
    # leaves its out-of-stage layers), get gradients.
    for name, param in model.named_parameters():
        assert (param.grad is None) != name.startswith('out_norms.'), name
    assert relative_error(*grads) < 1e-8


def test_pretrained_init_cfg_loads_a_classification_checkpoint(
        cls_checkpoint):
    """``init_cfg=dict(type='Pretrained', prefix='backbone.')`` on a
    checkpoint of tools/train.py (meta, message hub, optimizer state and the
    classifier's ``backbone.``/``head.`` weights)."""
    path, cls_state = cls_checkpoint
    model = MODELS.build(
        dict(
            type='HamiltonianNet',
            arch='det-38',
            stem_type='imagenet',
            out_indices=(0, 1, 2, 3),
            init_cfg=dict(
                type='Pretrained', checkpoint=path, prefix='backbone.')))
    fresh = copy.deepcopy(model.state_dict())
    model.init_weights()
    loaded = model.state_dict()
    expected = {
        k[len('backbone.'):]: v
        for k, v in cls_state.items() if k.startswith('backbone.')
    }
    # The classifier returns the last unit only: the other output norms are
    # the detector's own.
    assert set(expected) <= set(loaded)
    assert set(loaded) - set(expected) == {
        k for k in loaded if k.startswith(('out_norms.0.', 'out_norms.1.',
                                           'out_norms.2.'))
    }
    for name, value in expected.items():
        assert torch.equal(loaded[name], value), name
    for name in set(loaded) - set(expected):
        assert torch.equal(loaded[name], fresh[name]), name


def test_pretraining_config_trains_the_detection_backbone():
    """The ImageNet config of the backbone builds in MMPretrain and runs a
    training step (what tools/train.py does each iteration)."""
    cfg = Config.fromfile(config_path(CLS_CONFIG))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(
            dict(cfg.model, data_preprocessor=cfg.data_preprocessor))
        model.init_weights()
        optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    backbone = model.backbone
    assert isinstance(backbone, HamiltonianNet)
    assert backbone.widths == [64, 128, 256, 512]
    assert backbone.stem_type == 'imagenet'
    data = dict(
        inputs=[torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8)
                for _ in range(2)],
        data_samples=[DataSample().set_gt_label(i) for i in (3, 7)])
    before = backbone.units[3].blocks[0].f1.conv.weight.clone()
    log_vars = model.train_step(data, optim_wrapper)
    assert torch.isfinite(log_vars['loss'])
    assert not torch.equal(backbone.units[3].blocks[0].f1.conv.weight,
                           before)
