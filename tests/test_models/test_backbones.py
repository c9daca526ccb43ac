import copy

import pytest
import torch
from mmpretrain.registry import MODELS
from torch.nn.modules.batchnorm import _BatchNorm

import mmrevode  # noqa: F401
from mmrevode.analysis import count_saved_bytes
from mmrevode.models import (CifarResNet, HamiltonianNet, LeapfrogNet,
                             MidpointNet, RevNet)

SMALL = dict(blocks=[2, 2, 2], widths=[8, 16, 32])
BACKBONES = [HamiltonianNet, MidpointNet, LeapfrogNet]


def relative_error(a, b):
    return ((a - b).norm() / b.norm()).item()


def plain_copy(model):
    plain = copy.deepcopy(model)
    plain.set_mode('plain')
    return plain


def train_step(model, x, weights):
    model.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_()
    outs = model(x)
    sum((out * w).sum() for out, w in zip(outs, weights)).backward()
    return outs, x.grad, {n: p.grad for n, p in model.named_parameters()}


def saved_bytes(model, x):
    """Bytes of the activations autograd saves for backward, per storage."""
    with count_saved_bytes(list(model.parameters()) +
                           list(model.buffers())) as counted:
        outs = model(x)
    sum(out.sum() for out in outs).backward()
    return counted['bytes']


@pytest.mark.parametrize('backbone', BACKBONES)
def test_reversible_matches_plain_in_float64(backbone):
    torch.manual_seed(0)
    model = backbone(arch=SMALL, out_indices=(0, 1, 2)).double()
    model.init_weights()
    model.train()
    plain = plain_copy(model)
    x = torch.randn(4, 3, 16, 16, dtype=torch.float64)
    with torch.no_grad():
        weights = [torch.randn_like(o) for o in model(x)]
    model.load_state_dict(plain.state_dict())  # undo that forward's stats
    outs_r, gx_r, gp_r = train_step(model, x, weights)
    outs_p, gx_p, gp_p = train_step(plain, x, weights)
    for out_r, out_p in zip(outs_r, outs_p):
        assert torch.equal(out_r, out_p)
    assert relative_error(gx_r, gx_p) < 1e-8
    assert gp_r.keys() == gp_p.keys()
    for name in gp_p:
        assert relative_error(gp_r[name], gp_p[name]) < 1e-8, name
    buffers_p = dict(plain.named_buffers())
    for name, buffer in model.named_buffers():
        assert torch.equal(buffer, buffers_p[name]), name
    # One training step tracked one batch.
    assert model.units[0].blocks[0].shift_steps()[0].fn.norm \
        .num_batches_tracked.item() == 1


@pytest.mark.parametrize('backbone', BACKBONES)
def test_checkpoint_mode_matches_plain(backbone):
    torch.manual_seed(0)
    model = backbone(arch=SMALL).double().train()
    plain = plain_copy(model)
    checkpointed = plain_copy(model)
    checkpointed.set_mode('checkpoint')
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    weights = [torch.randn(2, 32, 4, 4, dtype=torch.float64)]
    _, _, grads_p = train_step(plain, x, weights)
    _, _, grads_c = train_step(checkpointed, x, weights)
    for name in grads_p:
        assert relative_error(grads_c[name], grads_p[name]) < 1e-10


@pytest.mark.parametrize('backbone', BACKBONES)
def test_activation_memory_is_flat_in_depth(backbone):
    figures = {}
    for reversible in (True, False):
        for blocks in (4, 16):
            torch.manual_seed(0)
            model = backbone(
                arch=dict(blocks=[blocks] * 3, widths=[8, 16, 32]),
                mode='reversible' if reversible else 'plain').train()
            x = torch.randn(2, 3, 16, 16)
            figures[reversible, blocks] = saved_bytes(model, x)
    reversible_growth = figures[True, 16] / figures[True, 4]
    plain_growth = figures[False, 16] / figures[False, 4]
    print(f'{backbone.__name__}: saved bytes 4 -> 16 blocks per unit: '
          f'reversible {figures[True, 4]} -> {figures[True, 16]}, '
          f'plain {figures[False, 4]} -> {figures[False, 16]}')
    assert reversible_growth < 1.1
    assert 3.0 < plain_growth < 4.1


def test_deep_unit_saves_only_its_final_pair():
    model = HamiltonianNet(
        arch=dict(blocks=[50], widths=[8]), out_norm=False).train()
    x = torch.randn(2, 3, 8, 8)
    packed = []

    def pack(tensor):
        packed.append(tensor)
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        stem_out = model.stem(x)
        num_stem = len(packed)
        model.units[0](stem_out)
    assert len(packed) - num_stem == 2


@pytest.mark.parametrize('backbone', BACKBONES)
def test_output_shapes_and_out_indices(backbone):
    model = backbone(arch=SMALL, out_indices=(0, -1))
    outs = model(torch.randn(2, 3, 16, 16))
    assert [tuple(o.shape) for o in outs] == [(2, 8, 16, 16), (2, 32, 4, 4)]
    default = backbone(arch=SMALL)
    assert default.out_indices == (2, )
    assert len(default(torch.randn(1, 3, 8, 8))) == 1


@pytest.mark.parametrize('backbone', BACKBONES)
def test_state_dict_does_not_depend_on_the_mode(backbone):
    reversible = backbone(arch=SMALL, mode='reversible')
    plain = backbone(arch=SMALL, mode='checkpoint')
    assert reversible.state_dict().keys() == plain.state_dict().keys()
    plain.load_state_dict(reversible.state_dict())


def test_frozen_stages():
    model = HamiltonianNet(arch=SMALL, frozen_stages=1)
    model.train()
    frozen = [model.stem, model.units[0]]
    for module in frozen:
        assert all(not p.requires_grad for p in module.parameters())
        assert all(not m.training for m in module.modules())
    assert all(p.requires_grad for p in model.units[1].parameters())
    stats = model.units[0].blocks[0].f1.norm.running_mean.clone()
    outs = model(torch.randn(2, 3, 16, 16))
    outs[-1].sum().backward()
    assert torch.equal(model.units[0].blocks[0].f1.norm.running_mean, stats)
    assert all(p.grad is None for m in frozen for p in m.parameters())
    assert all(p.grad is not None for p in model.units[2].parameters())


def test_frozen_stem_gives_same_gradients_in_both_modes():
    torch.manual_seed(0)
    model = MidpointNet(arch=SMALL, frozen_stages=0).double().train()
    plain = plain_copy(model).train()
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    weights = [torch.randn(2, 32, 4, 4, dtype=torch.float64)]
    for net in (model, plain):
        net.zero_grad()
        (net(x)[-1] * weights[0]).sum().backward()
    for (name, p_r), p_p in zip(model.named_parameters(),
                                plain.parameters()):
        if name.startswith('stem'):
            assert p_r.grad is None
        else:
            assert relative_error(p_r.grad, p_p.grad) < 1e-8, name


def test_norm_eval_keeps_running_stats():
    model = LeapfrogNet(arch=SMALL, norm_eval=True)
    model.train()
    assert all(not m.training for m in model.modules()
               if isinstance(m, _BatchNorm))
    before = copy.deepcopy(dict(model.named_buffers()))
    model(torch.randn(2, 3, 16, 16))[-1].sum().backward()
    for name, value in model.named_buffers():
        assert torch.equal(value, before[name]), name


def test_registry_build_and_presets():
    model = MODELS.build(dict(type='HamiltonianNet', arch='74'))
    assert isinstance(model, HamiltonianNet)
    assert model.blocks == [6, 6, 6] and model.widths == [32, 64, 112]
    assert HamiltonianNet(arch=1202).blocks == [100, 100, 100]
    assert MODELS.build(dict(type='MidpointNet', arch=182)).blocks == [30] * 3
    assert MODELS.build(dict(type='LeapfrogNet', arch='92')).blocks == [15] * 3
    for name in ('HamiltonianBlock', 'MidpointBlock', 'LeapfrogBlock'):
        assert MODELS.get(name) is not None


# The README's model table prints these counts.
@pytest.mark.parametrize('backbone,arch,count', [
    (HamiltonianNet, '38', 240864),
    (HamiltonianNet, '74', 480576),
    (HamiltonianNet, '110', 876128),
    (HamiltonianNet, '218', 1751072),
    (HamiltonianNet, '1202', 9722784),
    (MidpointNet, '62', 1941024),
    (MidpointNet, '92', 2910944),
    (MidpointNet, '182', 5820704),
    (LeapfrogNet, '62', 1941024),
    (LeapfrogNet, '92', 2910944),
    (LeapfrogNet, '182', 5820704),
])
def test_parameter_counts_of_the_readme_table(backbone, arch, count):
    model = backbone(arch=arch)
    assert sum(p.numel() for p in model.parameters()) == count


@pytest.mark.parametrize('backbone,arch,depth', [
    (HamiltonianNet, '74', 74),
    (HamiltonianNet, dict(blocks=[2, 3], widths=[8, 16]), 4 * 5 + 2),
    (MidpointNet, '182', 182),
    (LeapfrogNet, 62, 62),
    (RevNet, '38', 38),
    (RevNet, '164', 164),
    (RevNet, dict(blocks=[1, 1], widths=[16, 32], block_type='bottleneck'),
     6 * 2 + 2),
    (CifarResNet, 56, 56),
])
def test_depth_as_the_paper_counts_it(backbone, arch, depth):
    assert backbone.arch_depth(arch) == depth
    key = 'depth' if backbone is CifarResNet else 'arch'
    assert backbone(**{key: arch}).depth == depth


def test_depth_counts_the_blocks_built():
    model = RevNet(arch='38', block_cfg=dict(block_type='bottleneck'))
    assert model.depth == 6 * 9 + 2 and RevNet.arch_depth('38') == 38
    with pytest.raises(ValueError, match='6n \\+ 2'):
        CifarResNet.arch_depth(18)


@pytest.mark.parametrize('kwargs,error,match', [
    (dict(arch='75'), ValueError, r"unknown arch '75'.*'38', '74', '110'"),
    (dict(arch=3.5), TypeError, 'arch must be a preset name'),
    (dict(arch=dict(blocks=[1, 1])), ValueError, 'missing'),
    (dict(arch=dict(blocks=[1, 1], widths=[8, 15])), ValueError,
     'divisible by 2'),
    (dict(arch=dict(blocks=[1, 1], widths=[16, 8])), ValueError,
     'increasing'),
    (dict(arch=dict(blocks=[1, 0], widths=[8, 16])), ValueError,
     'positive ints'),
    (dict(h=0), ValueError, 'h \\(the step size\\) must be a positive'),
    (dict(h=-0.1), ValueError, 'must be a positive'),
    (dict(in_channels=0), ValueError, 'in_channels'),
    (dict(out_indices=(3, )), ValueError, 'not a unit index'),
    (dict(frozen_stages=4), ValueError, 'frozen_stages'),
    (dict(stem_type='deep'), ValueError, 'stem_type'),
])
def test_bad_arguments_are_named(kwargs, error, match):
    kwargs = dict(dict(arch='38'), **kwargs)
    with pytest.raises(error, match=match):
        HamiltonianNet(**kwargs)


def test_bad_inputs_are_explained():
    model = MidpointNet(arch=SMALL, in_channels=3)
    with pytest.raises(ValueError, match='in_channels=3.*1 channels'):
        model(torch.randn(2, 1, 16, 16))
    with pytest.raises(ValueError, match='smaller than the total'):
        model(torch.randn(2, 3, 3, 16))
    with pytest.raises(ValueError, match='4-D input'):
        model(torch.randn(3, 16, 16))


@pytest.mark.parametrize('backbone', BACKBONES)
def test_image_classifier_loss_step(backbone):
    model = MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(type=backbone.__name__, arch=SMALL),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(
                type='LinearClsHead',
                num_classes=10,
                in_channels=32,
                loss=dict(type='CrossEntropyLoss'))))
    model.init_weights()
    from mmpretrain.structures import DataSample
    samples = [DataSample().set_gt_label(i) for i in range(4)]
    losses = model(torch.randn(4, 3, 16, 16), samples, mode='loss')
    losses['loss'].backward()
    assert torch.isfinite(losses['loss'])
    assert all(p.grad is not None for p in model.backbone.parameters())


@pytest.mark.parametrize('backbone', BACKBONES)
def test_iter_units_walks_the_forward(backbone):
    model = backbone(arch=SMALL, out_indices=(0, 1, 2), out_norm=False)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        outs = model(x)
        walk = list(model.iter_units(x))
        assert [i for i, *_ in walk] == [0, 1, 2]
        assert all(unit is model.units[i] for i, unit, _, _ in walk)
        assert torch.equal(walk[0][2], model.stem(x))
        for (i, _, inputs, out), expected in zip(walk, outs):
            assert torch.equal(out, expected)
            if i > 0:
                transition = model.transitions[i - 1]
                assert torch.equal(inputs, transition(outs[i - 1]))
        # a unit run another way; the walk stops where asked
        seen = []
        walk = model.iter_units(
            x, lambda unit, inputs: seen.append(inputs.shape) or
            torch.zeros_like(unit(inputs)), num_units=2)
        assert [out.abs().sum().item() for *_, out in walk] == [0, 0]
        assert seen == [(2, 8, 16, 16), (2, 16, 8, 8)]


def test_only_blocks_that_need_their_position_get_it():
    midpoint = MidpointNet(arch=SMALL)
    assert [b.block_index for b in midpoint.units[1].blocks] == [0, 1]
    revnet = MODELS.build(dict(type='RevNet', arch=SMALL))
    assert [b.f.preact for b in revnet.units[1].blocks] == [False, True]

    class ScaledHamiltonianNet(HamiltonianNet):
        """A block's step size halves with its position (make_block)."""

        def make_block(self, channels, block_index, **kwargs):
            kwargs['h'] /= 2**block_index
            return super().make_block(channels, block_index, **kwargs)

    model = ScaledHamiltonianNet(arch=SMALL, h=0.2)
    assert [b.h for b in model.units[2].blocks] == [0.2, 0.1]
    with pytest.raises(TypeError, match='block_index'):
        model.block_cls(8, block_index=0)
