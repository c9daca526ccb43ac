"""mmrevode.analysis.models: specs, building, checkpoints."""
import pytest
import torch

from mmrevode.analysis import MODES, build_backbone, model_spec, parse_spec
from mmrevode.analysis.models import load_backbone_checkpoint, sweep_specs
from mmrevode.analysis.training import build_training_models
from mmrevode.engine import CheckpointMismatchError, UnsafeCheckpointError


class WritesFile:
    """Unpickling this object would create ``path``."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, 'w'))


def test_parse_spec():
    spec = parse_spec('HamiltonianNet:110')
    assert spec['name'] == 'HamiltonianNet-110'
    assert spec['blocks'] == [9, 9, 9] and spec['depth'] == 110
    assert spec['cfg'] == dict(type='HamiltonianNet', arch='110')
    spec = parse_spec(sweep_specs('HamiltonianNet', [100], [32, 64, 128])[0])
    assert spec['depth'] == 1202 and spec['name'] == 'HamiltonianNet-1202'
    assert spec['arch'] == dict(blocks=[100] * 3, widths=[32, 64, 128])
    assert parse_spec('MidpointNet:62')['depth'] == 62
    assert parse_spec('HamiltonianNet:218')['blocks'] == [18] * 3
    # without an arch: the backbone's default
    assert parse_spec('HamiltonianNet')['name'] == 'HamiltonianNet-74'
    spec = parse_spec('CifarResNet:8')
    assert spec['cfg'] == dict(type='CifarResNet', depth=8)
    assert spec['name'] == 'CifarResNet-8' and spec['depth'] == 8
    spec = parse_spec("RevNet:{'blocks': [2, 2], 'widths': [8, 16]}")
    assert spec['name'] == 'RevNet-18' and spec['depth'] == 4 * 4 + 2
    with pytest.raises(ValueError, match='no preset'):
        parse_spec('HamiltonianNet:7')
    with pytest.raises(ValueError, match='neither a config'):
        parse_spec('NoSuchNet:7')
    with pytest.raises(ValueError, match='needs an arch'):
        parse_spec('CifarResNet')


def test_sweep_specs():
    specs = sweep_specs('LeapfrogNet', [1, 30], [32, 64, 128])
    parsed = [parse_spec(s) for s in specs]
    assert [p['depth'] for p in parsed] == [8, 182]
    assert parsed[1]['name'] == 'LeapfrogNet-182'


def test_training_models_share_their_weights():
    spec = parse_spec("HamiltonianNet:{'blocks': [1, 1], 'widths': [8, 16]}")
    models = build_training_models(spec, list(MODES), input_size=8)
    states = [m.state_dict() for m in models.values()]
    for state in states[1:]:
        assert all(torch.equal(v, states[0][k]) for k, v in state.items())
    units = [m.backbone.units[0] for m in models.values()]
    assert [u.mode for u in units] == list(MODES)
    loss = models['plain'](torch.randn(2, 3, 8, 8), torch.tensor([1, 2]))
    assert loss.dim() == 0


def test_exact_modes_share_the_weights_and_are_timed_against_float():
    from mmrevode.analysis.benchmark import time_model
    from mmrevode.analysis.models import EXACT_MODES
    spec = parse_spec("HamiltonianNet:{'blocks': [1, 1], 'widths': [8, 16]}")
    models = build_training_models(
        spec, ['reversible', 'reversible-exact'], input_size=8)
    assert [m.backbone.exact for m in models.values()] == [False, True]
    assert [m.backbone.units[0].exact for m in models.values()] == \
        [False, True]
    state, exact_state = (m.state_dict() for m in models.values())
    # the same weights; each records its own network (exact or not)
    assert all(torch.equal(v, state[k]) for k, v in exact_state.items()
               if not k.endswith('_extra_state'))
    assert set(EXACT_MODES) == {f'{m}-exact' for m in MODES}
    records = time_model(spec, ['plain', 'reversible', 'reversible-exact'],
                         2, steps=2, warmup=0, input_size=8)
    by_mode = {r['mode']: r for r in records}
    assert by_mode['reversible']['time_ratio_to_float'] is None
    assert by_mode['reversible-exact']['time_ratio_to_float'] > 0
    assert by_mode['reversible-exact']['cpu_time_ratio_to_float'] > 0
    # the float64 pairs are saved: more bytes than the float32 ones
    assert by_mode['reversible-exact']['saved_bytes'] > \
        by_mode['reversible']['saved_bytes']


def test_config_file_and_backbone_options(tmp_path):
    config = tmp_path / 'tiny_revnet.py'
    config.write_text(
        'model = dict(type="ImageClassifier", backbone=dict(type="RevNet", '
        'arch=dict(blocks=[1, 2], widths=[8, 16])))\n')
    spec = model_spec(str(config))
    assert spec['name'] == 'tiny_revnet' and spec['model'] == 'RevNet'
    backbone = build_backbone(spec, dict(h=0.5))
    assert backbone.h == 0.5 and backbone.blocks == [1, 2]


def test_checkpoint_is_loaded_into_the_backbone(tmp_path):
    model = build_backbone('CifarResNet:8')
    state = {f'backbone.{k}': torch.full_like(v, 0.25) if
             v.is_floating_point() else v
             for k, v in model.state_dict().items()}
    state['head.fc.weight'] = torch.zeros(10, 64)
    torch.save({'state_dict': state}, tmp_path / 'c.pth')
    load_backbone_checkpoint(model, str(tmp_path / 'c.pth'))
    assert torch.all(model.conv1.weight == 0.25)
    torch.save({'state_dict': {'head.fc.weight': torch.zeros(1)}},
               tmp_path / 'bad.pth')
    with pytest.raises(CheckpointMismatchError, match='missing keys'):
        load_backbone_checkpoint(model, str(tmp_path / 'bad.pth'))
    # read by the safe loader: a pickled call is refused, not run
    marker = tmp_path / 'marker'
    torch.save({'state_dict': state, 'x': WritesFile(marker)},
               tmp_path / 'crafted.pth')
    with pytest.raises(UnsafeCheckpointError, match='io.open'):
        load_backbone_checkpoint(model, str(tmp_path / 'crafted.pth'))
    assert not marker.exists()
