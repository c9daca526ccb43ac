"""tools/analysis_tools/reconstruction_error.py on tiny models."""
import importlib.util
import json
import math
import os.path as osp

import matplotlib.image
import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SPEC = importlib.util.spec_from_file_location(
    'reconstruction_error',
    osp.join(ROOT, 'tools', 'analysis_tools', 'reconstruction_error.py'))
recon = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(recon)

TINY = "{'blocks': [3, 2], 'widths': [8, 16]}"
SCHEMES = ('HamiltonianNet', 'MidpointNet', 'LeapfrogNet')


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize('model', SCHEMES)
def test_unit_errors_are_round_off(model):
    spec = recon.parse_spec(f'{model}:{TINY}')
    backbone = recon.build_backbone(spec)
    images = torch.randn(4, 3, 8, 8)
    buffers = {k: v.clone() for k, v in backbone.named_buffers()}
    errors32 = recon.unit_errors(backbone, images)
    errors64 = recon.unit_errors(backbone.double(), images.double())
    assert len(errors32) == len(errors64) == 2  # one per unit
    assert all(0 <= e < 1e-5 for e in errors32), errors32
    assert all(0 <= e < 1e-13 for e in errors64), errors64
    assert max(errors64) < max(errors32)
    for name, value in backbone.named_buffers():  # stats untouched
        assert torch.equal(value.to(buffers[name].dtype), buffers[name])


def test_measure_records():
    spec = recon.parse_spec(f'MidpointNet:{TINY}')
    records = recon.measure(spec, train_steps=3, batch_size=4,
                            input_size=8)
    assert [(r['state'], r['dtype']) for r in records] == [
        ('init', 'float32'), ('init', 'float64'), ('trained', 'float32'),
        ('trained', 'float64')
    ]
    for record in records:
        assert set(recon.RECORD_FIELDS) <= set(record)
        assert len(record['unit_errors']) == 2
        assert all(math.isfinite(e) for e in record['unit_errors'])
        assert record['max_error'] == max(record['unit_errors'])
        assert record['h'] == 0.02 and record['depth'] == 2 * 5 + 2
    assert len(records[2]['train_losses']) == 3
    # Training moved the weights: the errors are not the initial ones.
    assert records[2]['unit_errors'] != records[0]['unit_errors']
    json.dumps(records)


def test_parse_spec_and_sweep():
    specs = recon.sweep_specs('LeapfrogNet', [1, 30], [32, 64, 128])
    parsed = [recon.parse_spec(s) for s in specs]
    assert [p['depth'] for p in parsed] == [8, 182]
    assert parsed[1]['name'] == 'LeapfrogNet-182'
    assert recon.parse_spec('HamiltonianNet:218')['blocks'] == [18] * 3
    with pytest.raises(ValueError):
        recon.parse_spec('MidpointNet')


@pytest.mark.slow
def test_command_line(tmp_path):
    json_path = str(tmp_path / 'recon.json')
    png_path = str(tmp_path / 'recon.png')
    result = recon.main([
        *SCHEMES, '--blocks-per-unit', '1', '3', '--widths', '8', '16',
        '--train-steps', '2', '--batch-size', '2', '--input-size', '8',
        '--threads', '1', '--no-progress', '--json', json_path, '--plot',
        png_path
    ])
    with open(json_path) as f:
        saved = json.load(f)
    records = saved['records']
    assert records == json.loads(json.dumps(result['records']))
    assert len(records) == len(SCHEMES) * 2 * 2 * 2
    assert all(math.isfinite(r['max_error']) for r in records)
    image = matplotlib.image.imread(png_path)
    assert image.shape[:2] == (420, 1100)
    assert image.std() > 0
    text = recon.table(records)
    assert text.count('\n') == len(SCHEMES) * 2 * 2 + 1
