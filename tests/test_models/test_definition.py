"""The network a checkpoint records is the network that loads it.

Every backbone saves its definition (``_extra_state``) and every way of
loading weights compares it with the network built: torch's and MMEngine's
``load_state_dict``, ``check_checkpoint_fits`` (tools/test.py, demo, ONNX
export) and ``init_cfg=dict(type='Pretrained')``.
"""
import io
import logging

import pytest
import torch
from mmengine.logging import MMLogger
from mmengine.runner.checkpoint import load_checkpoint, load_state_dict
from mmpretrain.registry import MODELS

import mmrevode  # noqa: F401
from mmrevode.engine import (CheckpointMismatchError, MissingDefinitionError,
                             NetworkMismatchError, check_checkpoint_fits,
                             checkpoint_mismatches, load_from_local)
from mmrevode.engine.definition import decode_definition
from mmrevode.models import (CifarResNet, HamiltonianNet, LeapfrogNet,
                             MidpointNet, RevNet)

TINY = dict(blocks=[1, 1, 1], widths=[8, 16, 32])
BACKBONES = {
    cls.__name__: cls
    for cls in (HamiltonianNet, MidpointNet, LeapfrogNet, RevNet, CifarResNet)
}
DEFAULTS = dict(CifarResNet=dict(depth=8))


@pytest.fixture
def warnings_logged():
    """The messages MMEngine's current logger logs at WARNING or above."""
    messages = []

    class Collect(logging.Handler):

        def emit(self, record):
            messages.append(record.getMessage())

    logger = MMLogger.get_current_instance()
    handler = Collect(level=logging.WARNING)
    logger.addHandler(handler)
    yield messages
    logger.removeHandler(handler)


def build(name, seed=0, **kwargs):
    torch.manual_seed(seed)
    kwargs = dict(DEFAULTS.get(name, dict(arch=TINY)), **kwargs)
    model = BACKBONES[name](**kwargs)
    model.init_weights()
    return model


def classifier(seed=0, init=True, **backbone):
    torch.manual_seed(seed)
    model = MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(dict(type='HamiltonianNet', arch=TINY), **backbone),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=10, in_channels=32)))
    if init:
        model.init_weights()
    return model


def saved(state_dict):
    """``state_dict`` through torch.save and a weights-only load without
    any allowlist (the definition needs no global)."""
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def without_definition(state_dict):
    return {k: v for k, v in state_dict.items()
            if not k.endswith('_extra_state')}


# -- every backbone records its definition ------------------------------------
@pytest.mark.parametrize('name', list(BACKBONES))
def test_definition_round_trips(name):
    model = build(name)
    state = saved(model.state_dict())
    definition = decode_definition(state['_extra_state'])
    assert definition == model.definition()
    assert definition['type'] == name
    other = build(name, seed=1)
    other.load_state_dict(state)  # strict
    for key, value in model.state_dict().items():
        assert torch.equal(other.state_dict()[key], value), key
    # the same through MMEngine's loader and the project's safe loader
    buffer = io.BytesIO()
    torch.save(dict(state_dict=model.state_dict(), meta={}), buffer)
    buffer.seek(0)
    load_state_dict(build(name, seed=2),
                    torch.load(buffer, weights_only=True)['state_dict'])


@pytest.mark.parametrize('name', ['HamiltonianNet', 'RevNet', 'CifarResNet'])
def test_the_mode_is_not_part_of_the_definition(name):
    modes = ['plain', 'checkpoint'] if name == 'CifarResNet' else \
        ['reversible', 'plain', 'checkpoint']
    models = [build(name, mode=mode) for mode in modes]
    keys = [list(m.state_dict()) for m in models]
    assert all(k == keys[0] for k in keys)
    assert all(m.definition() == models[0].definition() for m in models)
    for model in models[1:]:
        model.load_state_dict(models[0].state_dict())


@pytest.mark.parametrize('name', ['HamiltonianNet', 'MidpointNet',
                                  'LeapfrogNet', 'RevNet'])
def test_random_draws_are_replayed_by_default_and_not_defined(name):
    default, off = build(name), build(name, preserve_rng_state=False)
    assert default.preserve_rng_state and not off.preserve_rng_state
    assert all(unit.preserve_rng_state for unit in default.units)
    assert not any(unit.preserve_rng_state for unit in off.units)
    assert default.definition() == off.definition()
    off.load_state_dict(default.state_dict())
    default.load_state_dict(off.state_dict())
    with pytest.raises(TypeError, match='preserve_rng_state must be True'):
        build(name, preserve_rng_state='yes')


def test_definition_values():
    definition = LeapfrogNet('62', start='zero').definition()
    assert definition == dict(
        type='LeapfrogNet',
        arch=dict(blocks=[10, 10, 10], widths=[32, 64, 128]),
        h=0.1,
        exact=False,
        in_channels=3,
        stem_type='cifar',
        out_norm=True,
        norm_cfg=dict(type='BN', eps=1e-5),
        act_cfg=dict(type='ReLU'),
        block_cfg={},
        start='zero')
    assert CifarResNet(depth=20).definition() == dict(
        type='CifarResNet', depth=20, in_channels=3, base_channels=16,
        num_stages=3, shortcut='A', norm_cfg=dict(type='BN', eps=1e-5),
        act_cfg=dict(type='ReLU'))


# -- each key is compared -----------------------------------------------------
KEY_CHANGES = [
    # (backbone, key, arguments of the checkpoint's model, of the model
    #  built, the key's value in the checkpoint, in the model)
    ('HamiltonianNet', 'h', {}, dict(h=0.05), 0.1, 0.05),
    ('MidpointNet', 'h', dict(h=0.02), {}, 0.02, 0.1),
    ('LeapfrogNet', 'h', dict(h=0.1), dict(h=0.1 + 1e-12), 0.1, 0.1 + 1e-12),
    ('RevNet', 'h', {}, dict(h=0.5), 1.0, 0.5),
    ('HamiltonianNet', 'arch', {}, dict(arch=dict(blocks=[1, 2, 1],
                                                  widths=[8, 16, 32])),
     TINY, dict(blocks=[1, 2, 1], widths=[8, 16, 32])),
    ('HamiltonianNet', 'in_channels', {}, dict(in_channels=1), 3, 1),
    ('MidpointNet', 'exact', {}, dict(exact=True), False, True),
    ('MidpointNet', 'stem_type', {}, dict(stem_type='imagenet'), 'cifar',
     'imagenet'),
    ('LeapfrogNet', 'out_norm', {}, dict(out_norm=False), True, False),
    ('HamiltonianNet', 'norm_cfg', {}, dict(norm_cfg=dict(type='GN',
                                                          num_groups=2)),
     dict(type='BN', eps=1e-5), dict(type='GN', num_groups=2, eps=1e-5)),
    ('MidpointNet', 'norm_cfg', {}, dict(norm_cfg=dict(type='BN', eps=1e-3)),
     dict(type='BN', eps=1e-5), dict(type='BN', eps=1e-3)),
    ('HamiltonianNet', 'act_cfg', {}, dict(act_cfg=dict(type='SiLU')),
     dict(type='ReLU'), dict(type='SiLU')),
    ('LeapfrogNet', 'start', {}, dict(start='zero'), 'rest', 'zero'),
    ('RevNet', 'arch', {}, dict(block_cfg=dict(block_type='bottleneck')),
     dict(TINY, block_type='basic'), dict(TINY, block_type='bottleneck')),
    ('CifarResNet', 'depth', {}, dict(depth=14), 8, 14),
    ('CifarResNet', 'in_channels', {}, dict(in_channels=1), 3, 1),
    ('CifarResNet', 'base_channels', {}, dict(base_channels=8), 16, 8),
    ('CifarResNet', 'num_stages', {}, dict(num_stages=2), 3, 2),
    ('CifarResNet', 'shortcut', {}, dict(shortcut='B'), 'A', 'B'),
    ('CifarResNet', 'act_cfg', {}, dict(act_cfg=dict(type='SiLU')),
     dict(type='ReLU'), dict(type='SiLU')),
    ('CifarResNet', 'norm_cfg', {}, dict(norm_cfg=dict(type='GN',
                                                       num_groups=4)),
     dict(type='BN', eps=1e-5), dict(type='GN', num_groups=4, eps=1e-5)),
]


@pytest.mark.parametrize(
    'name, key, trained, built, old, new', KEY_CHANGES,
    ids=[f'{c[0]}-{c[1]}-{i}' for i, c in enumerate(KEY_CHANGES)])
def test_each_definition_key_is_compared(name, key, trained, built, old,
                                         new, tmp_path):
    state = build(name, **trained).state_dict()
    model = build(name, seed=1, **built)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    named = (f'trained with backbone {key}={old!r}; this model has '
             f'{key}={new!r} (model.backbone.{key}). Set it to {old!r}, or '
             'set model.backbone.check_definition=False')
    for load in (lambda: model.load_state_dict(state),
                 lambda: model.load_state_dict(state, strict=False),
                 lambda: load_state_dict(model, state)):
        with pytest.raises(NetworkMismatchError) as error:
            load()
        assert type(error.value) is NetworkMismatchError
        assert named in str(error.value)
        assert '\n' not in str(error.value)
    # nothing was loaded
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    # the tools' check says the same, naming the file, before the weights
    path = str(tmp_path / 'c.pth')
    torch.save(dict(state_dict=state, meta={}), path)
    with pytest.raises(NetworkMismatchError) as error:
        check_checkpoint_fits(model, load_from_local(path), path)
    assert str(error.value).startswith(f'The checkpoint {path} was {named}')
    assert checkpoint_mismatches(model, dict(state_dict=state)) == [
        f'The checkpoint was {named} to run this different network with '
        'these weights on purpose.'
    ]
    with pytest.raises(NetworkMismatchError) as error:
        load_checkpoint(model, path)  # MMEngine's, as get_model uses it
    assert named in str(error.value)


def test_another_scheme_is_named_by_its_type():
    state = build('HamiltonianNet').state_dict()
    with pytest.raises(NetworkMismatchError) as error:
        build('MidpointNet').load_state_dict(state)
    assert str(error.value).startswith(
        "The checkpoint was trained with backbone type='HamiltonianNet'; "
        "this model has type='MidpointNet' (model.backbone.type).")


@pytest.mark.parametrize('trained, built', [
    (dict(norm_cfg=dict(type='BN')),
     dict(norm_cfg=dict(type='SyncBN', requires_grad=False, momentum=0.3))),
    (dict(act_cfg=dict(type='ReLU')),
     dict(act_cfg=dict(type='ReLU', inplace=True))),
    (dict(arch='38'), dict(arch=dict(blocks=[3, 3, 3], widths=[32, 64, 112]))),
    (dict(h=1), dict(h=1.0)),
    (dict(mode='plain', frozen_stages=2, norm_eval=True, out_indices=(0, 2)),
     {}),
])
def test_settings_of_the_same_network_agree(trained, built):
    """Training-only settings, spellings of the same network, the mode and
    the outputs are not compared."""
    for cls in (RevNet, HamiltonianNet):
        kwargs = [dict(dict(arch=TINY), **k) for k in (trained, built)]
        state = cls(**kwargs[0]).state_dict()
        state = {k: v for k, v in state.items()
                 if not k.startswith('out_norms')}
        cls(**kwargs[1]).load_state_dict(state, strict=False)
    state = LeapfrogNet(TINY, block_cfg=dict(start='zero')).state_dict()
    LeapfrogNet(TINY, start='zero').load_state_dict(state)
    state = RevNet(TINY, block_cfg=dict(block_type='bottleneck')).state_dict()
    RevNet(dict(TINY, block_type='bottleneck')).load_state_dict(state)


def test_check_definition_false_runs_the_other_network(warnings_logged):
    trained = build('HamiltonianNet')
    model = build('HamiltonianNet', seed=1, h=0.05, check_definition=False)
    model.load_state_dict(trained.state_dict())
    assert model.h == 0.05
    assert decode_definition(model.state_dict()['_extra_state'])['h'] == 0.05
    assert torch.equal(model.stem[0].weight, trained.stem[0].weight)
    assert any('trained with h=0.1' in m and 'check_definition=False' in m
               for m in warnings_logged), warnings_logged
    # the tools' check passes too
    check_checkpoint_fits(model, dict(state_dict=trained.state_dict()), 'x')


def test_unrecorded_keys_take_their_former_value(monkeypatch):
    """A key added to the definition later: checkpoints without it are
    compared with the value networks had before (unrecorded_defaults)."""
    state = build('HamiltonianNet').state_dict()
    definition = HamiltonianNet.definition
    monkeypatch.setattr(HamiltonianNet, 'definition',
                        lambda self: dict(definition(self), later=self.later))
    monkeypatch.setattr(HamiltonianNet, 'unrecorded_defaults',
                        dict(exact=False, later=False))
    model = build('HamiltonianNet')
    model.later = False
    model.load_state_dict(state)
    model.later = True
    with pytest.raises(NetworkMismatchError,
                       match='later=False; this model has later=True'):
        model.load_state_dict(state)
    monkeypatch.setattr(HamiltonianNet, 'unrecorded_defaults', {})
    model.later = False
    with pytest.raises(NetworkMismatchError,
                       match='later=not recorded; this model has '
                       'later=False'):
        model.load_state_dict(state)


def test_checkpoints_from_before_exact_are_floating_point_networks():
    """exact was added to the definition later: a definition without it is
    a network with floating-point states."""
    import json
    model = build('HamiltonianNet')
    state = model.state_dict()
    key = next(k for k in state if k.endswith('_extra_state'))
    old = json.loads(bytes(state[key].tolist()).decode())
    del old['exact']
    state[key] = torch.tensor(list(json.dumps(old).encode()),
                              dtype=torch.uint8)
    build('HamiltonianNet').load_state_dict(state)
    with pytest.raises(NetworkMismatchError, match='exact=False; this model '
                       'has exact=True'):
        build('HamiltonianNet', exact=True).load_state_dict(state)


def test_unreadable_definition_is_a_mismatch():
    state = build('MidpointNet').state_dict()
    state['_extra_state'] = torch.tensor([1, 2, 3], dtype=torch.uint8)
    with pytest.raises(NetworkMismatchError,
                       match="type=unreadable; this model has "
                       "type='MidpointNet'"):
        build('MidpointNet').load_state_dict(state)


# -- checkpoints without a definition ----------------------------------------
def test_checkpoint_without_definition_names_the_converter(tmp_path,
                                                           warnings_logged):
    old = without_definition(classifier().state_dict())
    model = classifier(seed=1)
    for load in (lambda: model.load_state_dict(old),
                 lambda: model.load_state_dict(old, strict=False),
                 lambda: load_state_dict(model, old)):
        with pytest.raises(MissingDefinitionError) as error:
            load()
        message = str(error.value)
        assert 'holds HamiltonianNet weights but not the definition' in \
            message
        assert 'tools/model_converters/add_definition.py CONFIG ' \
            'CHECKPOINT OUTPUT' in message
        assert 'missing' not in message.lower()
    path = str(tmp_path / 'old.pth')
    torch.save(dict(state_dict=old, meta={}), path)
    with pytest.raises(MissingDefinitionError,
                       match=f'The checkpoint {path} holds HamiltonianNet'):
        check_checkpoint_fits(model, load_from_local(path), path)
    # weights of other modules only: nothing of the backbone to check
    head = {k: v for k, v in old.items() if k.startswith('head.')}
    model.load_state_dict(head, strict=False)
    # on purpose
    unchecked = classifier(seed=1, check_definition=False)
    unchecked.load_state_dict(old)
    assert torch.equal(unchecked.backbone.stem[0].weight,
                       old['backbone.stem.0.weight'])
    assert any('records no definition' in m for m in warnings_logged)
    check_checkpoint_fits(unchecked, dict(state_dict=old), path)


def test_checkpoint_mismatches_reports_the_definition_first():
    state = dict(classifier().state_dict())
    state['head.fc.weight'] = torch.zeros(3, 32)
    model = classifier(h=0.2)
    problems = checkpoint_mismatches(model, dict(state_dict=state))
    assert len(problems) == 1 and problems[0].startswith(
        'The checkpoint was trained with backbone h=0.1; this model has '
        'h=0.2 (model.backbone.h).')
    # with the same network, the weights are compared
    problems = checkpoint_mismatches(classifier(), dict(state_dict=state))
    assert problems == [
        '1 different shapes (head.fc.weight (3, 32) vs (10, 32) in the model)'
    ]
    with pytest.raises(CheckpointMismatchError, match='different shapes'):
        check_checkpoint_fits(classifier(), dict(state_dict=state), 'c.pth')


# -- init_cfg=dict(type='Pretrained') -----------------------------------------
@pytest.fixture
def cls_checkpoint(tmp_path):
    """A classifier checkpoint (as tools/train.py writes) and its model."""
    model = classifier(seed=3)
    path = str(tmp_path / 'cls.pth')
    torch.save(dict(state_dict=model.state_dict(), meta={}), path)
    return path, model


def pretrained(path, **kwargs):
    return dict(type='Pretrained', checkpoint=path, **kwargs)


def test_pretrained_loads_the_backbone_of_a_classifier(cls_checkpoint):
    path, trained = cls_checkpoint
    torch.manual_seed(0)
    model = HamiltonianNet(TINY, out_indices=(0, 1, 2),
                           init_cfg=pretrained(path, prefix='backbone.'))
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    model.init_weights()
    for key, value in model.state_dict().items():
        if key.startswith(('out_norms.0.', 'out_norms.1.')):
            assert torch.equal(value, fresh[key]), key  # not in the file
        else:
            assert torch.equal(value, trained.state_dict()[f'backbone.{key}'])


@pytest.mark.parametrize('backbone, error, phrase', [
    (dict(h=0.2), NetworkMismatchError,
     'was trained with backbone h=0.1; this model has h=0.2'),
    (dict(arch=dict(blocks=[1, 1, 1], widths=[8, 16, 24])),
     NetworkMismatchError, '(model.backbone.arch)'),
])
def test_pretrained_of_another_network_stops(cls_checkpoint, backbone, error,
                                             phrase):
    path, trained = cls_checkpoint
    args = dict(dict(arch=TINY), **backbone)
    model = HamiltonianNet(**args, init_cfg=pretrained(path,
                                                       prefix='backbone.'))
    with pytest.raises(error) as raised:
        model.init_weights()
    assert f'The checkpoint {path}' in str(raised.value)
    assert phrase in str(raised.value)
    # partial=True loads what fits into this network
    model = HamiltonianNet(
        **args, init_cfg=pretrained(path, prefix='backbone.', partial=True))
    model.init_weights()
    assert torch.equal(model.stem[0].weight,
                       trained.backbone.stem[0].weight)
    assert decode_definition(model.state_dict()['_extra_state']) == \
        model.definition()


def test_pretrained_weights_that_do_not_fit_stop(cls_checkpoint, tmp_path):
    path, trained = cls_checkpoint
    # no prefix: the classifier's keys are not the backbone's
    model = HamiltonianNet(TINY, init_cfg=pretrained(path))
    with pytest.raises(CheckpointMismatchError,
                       match="prefix='backbone.'"):
        model.init_weights()
    # a weight missing, another of another shape
    state = dict(trained.state_dict())
    del state['backbone.units.0.blocks.0.f1.conv.weight']
    state['backbone.stem.1.weight'] = torch.ones(5)
    broken = str(tmp_path / 'broken.pth')
    torch.save(dict(state_dict=state), broken)
    model = HamiltonianNet(TINY, init_cfg=pretrained(broken,
                                                     prefix='backbone.'))
    with pytest.raises(CheckpointMismatchError) as error:
        model.init_weights()
    message = str(error.value)
    assert '1 missing keys (units.0.blocks.0.f1.conv.weight)' in message
    assert 'stem.1.weight (5,) vs (8,)' in message
    assert 'partial=True' in message
    model = HamiltonianNet(
        TINY, init_cfg=pretrained(broken, prefix='backbone.', partial=True))
    model.init_weights()
    assert torch.equal(model.stem[0].weight,
                       trained.backbone.stem[0].weight)
    with pytest.raises(ValueError, match='init_cfg Pretrained takes'):
        HamiltonianNet(TINY, init_cfg=pretrained(
            path, prefix='backbone.', strict=False)).init_weights()


def test_pretrained_without_definition(cls_checkpoint, tmp_path):
    path, trained = cls_checkpoint
    old = str(tmp_path / 'old.pth')
    torch.save(dict(state_dict=without_definition(trained.state_dict())), old)
    model = classifier(
        init=False, init_cfg=pretrained(old, prefix='backbone.'))
    with pytest.raises(MissingDefinitionError, match='add_definition.py'):
        model.init_weights()
    model = classifier(
        init_cfg=pretrained(old, prefix='backbone.', partial=True))
    assert torch.equal(model.backbone.stem[0].weight,
                       trained.backbone.stem[0].weight)


def test_zero_init_residual_comes_before_pretrained(tmp_path):
    torch.manual_seed(0)
    trained = CifarResNet(depth=8)
    trained.init_weights()
    path = str(tmp_path / 'resnet.pth')
    torch.save(trained.state_dict(), path)
    model = CifarResNet(depth=8, zero_init_residual=True,
                        init_cfg=pretrained(path))
    model.init_weights()
    norm2 = model.layer1[0].norm2.weight
    assert torch.equal(norm2, trained.layer1[0].norm2.weight)
    assert bool((norm2 != 0).all())
    model = CifarResNet(depth=8, zero_init_residual=True)
    model.init_weights()
    assert bool((model.layer1[0].norm2.weight == 0).all())


def test_a_deeply_nested_definition_is_a_mismatch():
    """json.loads of '[' * 100000 raises RecursionError: still one
    mismatch, not a traceback."""
    state = build('MidpointNet').state_dict()
    key = next(k for k in state if k.endswith('_extra_state'))
    state[key] = torch.tensor(list(b'[' * 100000), dtype=torch.uint8)
    with pytest.raises(NetworkMismatchError, match='unreadable'):
        build('MidpointNet').load_state_dict(state)
