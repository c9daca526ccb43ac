"""The detection configs: build with MMDetection's registry, a loss step
and a predict step on a two-image batch, gradients, frozen stages, the
reversible backward inside the detector and the pre-trained backbone."""
import copy

import pytest
import torch

pytest.importorskip('mmdet')

from mmengine.config import Config  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402
from mmdet.registry import MODELS  # noqa: E402
from mmdet.testing import demo_mm_inputs  # noqa: E402
from torch.nn.modules.batchnorm import _BatchNorm  # noqa: E402

from det_utils import DET_CONFIGS, config_path  # noqa: E402

NUM_CLASSES = 80
FROZEN = ('stem.', 'units.0.')  # frozen_stages=1 in the configs


def load_cfg(name, init_cfg=None, **backbone):
    """The config's model, without the pre-trained checkpoint by default,
    and with Faster R-CNN's RoI sampling shrunk to keep the CPU test fast."""
    import mmrevode  # noqa: F401
    cfg = Config.fromfile(config_path(name))
    cfg.model.backbone.init_cfg = init_cfg
    cfg.model.backbone.update(backbone)
    if cfg.model.type == 'FasterRCNN':
        cfg.model.train_cfg.rpn_proposal.max_per_img = 200
        cfg.model.train_cfg.rcnn.sampler.num = 64
    return cfg


def build_detector(cfg):
    init_default_scope('mmdet')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model


def batch(model, training, size=128):
    packed = demo_mm_inputs(
        2, [[3, size, size], [3, size - 32, size]],
        num_items=[3, 2],
        num_classes=NUM_CLASSES)
    return model.data_preprocessor(packed, training)


def loss_step(model, data, seed=0):
    model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)  # Faster R-CNN samples RoIs at random
    losses = model(**data, mode='loss')
    loss, log_vars = model.parse_losses(losses)
    loss.backward()
    return loss, log_vars


@pytest.mark.parametrize('name', DET_CONFIGS)
def test_config_builds_and_runs_loss_and_predict(name):
    cfg = load_cfg(name)
    assert cfg.model.backbone.type == 'mmpretrain.HamiltonianNet'
    assert cfg.custom_imports.imports == ['mmrevode']
    model = build_detector(cfg)
    backbone = model.backbone
    assert type(backbone).__name__ == 'HamiltonianNet'
    widths = [backbone.widths[i] for i in backbone.out_indices]
    assert list(cfg.model.neck.in_channels) == widths

    model.train()
    # frozen_stages=1 and norm_eval=True, as ResNet in MMDetection.
    for prefix in FROZEN:
        module = backbone.get_submodule(prefix.rstrip('.'))
        assert not any(m.training for m in module.modules())
    assert not any(m.training for m in backbone.modules()
                   if isinstance(m, _BatchNorm))
    assert any(m.training for m in model.neck.modules())

    data = batch(model, training=True)
    loss, log_vars = loss_step(model, data)
    assert torch.isfinite(loss) and loss.item() > 0
    for name_, param in backbone.named_parameters():
        if name_.startswith(FROZEN):
            assert not param.requires_grad and param.grad is None, name_
        else:
            assert param.grad is not None, name_
            assert torch.isfinite(param.grad).all(), name_
    # The last unit's convolutions get non-zero gradients.
    assert backbone.units[-1].blocks[-1].f2.conv.weight.grad.abs().sum() > 0
    assert all(p.grad is not None for p in model.neck.parameters())

    model.eval()
    data = batch(model, training=False)
    with torch.no_grad():
        results = model(**data, mode='predict')
    assert len(results) == 2
    for result in results:
        pred = result.pred_instances
        assert pred.bboxes.shape[1:] == (4, )
        assert len(pred.scores) == len(pred.labels) == len(pred.bboxes)
        assert (pred.labels < NUM_CLASSES).all()


def test_reversible_backward_matches_plain_inside_retinanet():
    """The whole detector's gradients agree between the reversible and the
    plain backward of the backbone, with the stem and two units frozen (the
    first trained unit's input needs no gradient)."""
    frozen_stages = 2
    cfg = load_cfg(DET_CONFIGS[0], frozen_stages=frozen_stages)
    model = build_detector(cfg).train()
    plain = copy.deepcopy(model)
    plain.backbone.set_mode('plain')
    data = batch(model, training=True, size=96)
    loss_r, _ = loss_step(model, data)
    loss_p, _ = loss_step(plain, data)
    assert torch.allclose(loss_r, loss_p, rtol=1e-5)
    plain_params = dict(plain.named_parameters())
    frozen = ('backbone.stem.', ) + tuple(
        f'backbone.units.{i}.' for i in range(frozen_stages))
    for name, param in model.named_parameters():
        if name.startswith(frozen):
            assert param.grad is None and plain_params[name].grad is None
            continue
        grad_p = plain_params[name].grad
        error = (param.grad - grad_p).norm() / grad_p.norm().clamp_min(1e-12)
        assert error < 1e-3, (name, error.item())


@pytest.mark.parametrize('name', DET_CONFIGS)
def test_pretrained_classification_checkpoint_in_the_detector(
        name, cls_checkpoint):
    """The configs' ``init_cfg`` (Pretrained, prefix 'backbone.') loads a
    checkpoint of tools/train.py made from the pre-training config."""
    path, cls_state = cls_checkpoint
    cfg = Config.fromfile(config_path(name))
    init_cfg = cfg.model.backbone.init_cfg
    assert init_cfg.type == 'Pretrained' and init_cfg.prefix == 'backbone.'
    init_cfg.checkpoint = path
    model = build_detector(cfg)
    state = model.state_dict()
    loaded = [k for k in cls_state if k.startswith('backbone.')]
    assert len(loaded) > 100
    for key in loaded:
        if key in state:
            assert torch.equal(state[key], cls_state[key]), key
        else:  # an output norm the detector does not use
            assert key.startswith('backbone.out_norms.')
    assert torch.equal(state['backbone.out_norms.3.0.weight'],
                       cls_state['backbone.out_norms.3.0.weight'])
