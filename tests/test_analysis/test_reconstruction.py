"""mmrevode.analysis.reconstruction and
tools/analysis_tools/reconstruction_error.py on tiny models."""
import json
import math

import matplotlib.image
import pytest
import torch

from mmrevode.analysis import (RECONSTRUCTION_FIELDS, build_backbone,
                               measure_reconstruction, parse_spec,
                               unit_errors)
from mmrevode.models import MidpointNet

TINY = "{'blocks': [3, 2], 'widths': [8, 16]}"
SCHEMES = ('HamiltonianNet', 'MidpointNet', 'LeapfrogNet')


@pytest.mark.parametrize('model', SCHEMES)
def test_unit_errors_are_round_off(model):
    backbone = build_backbone(f'{model}:{TINY}', seed=0)
    images = torch.randn(4, 3, 8, 8)
    buffers = {k: v.clone() for k, v in backbone.named_buffers()}
    errors32 = unit_errors(backbone, images)
    errors64 = unit_errors(backbone.double(), images.double())
    assert len(errors32) == len(errors64) == 2  # one per unit
    assert all(0 <= e < 1e-5 for e in errors32), errors32
    assert all(0 <= e < 1e-13 for e in errors64), errors64
    assert max(errors64) < max(errors32)
    for name, value in backbone.named_buffers():  # stats untouched
        assert torch.equal(value.to(buffers[name].dtype), buffers[name])


def test_measure_records():
    spec = parse_spec(f'MidpointNet:{TINY}')
    records = measure_reconstruction(spec, train_steps=3, batch_size=4,
                                     input_size=8)
    assert [(r['state'], r['dtype']) for r in records] == [
        ('init', 'float32'), ('init', 'float64'), ('trained', 'float32'),
        ('trained', 'float64')
    ]
    for record in records:
        assert set(RECONSTRUCTION_FIELDS) <= set(record)
        assert len(record['unit_errors']) == 2
        assert all(math.isfinite(e) for e in record['unit_errors'])
        assert record['max_error'] == max(record['unit_errors'])
        assert record['h'] == MidpointNet.default_h
        assert record['depth'] == 2 * 5 + 2
    assert len(records[2]['train_losses']) == 3
    # Training moved the weights: the errors are not the initial ones.
    assert records[2]['unit_errors'] != records[0]['unit_errors']
    json.dumps(records)


@pytest.mark.slow
def test_command_line(tmp_path, run_tool):
    stdout = run_tool(
        'reconstruction_error', *SCHEMES, '--blocks-per-unit', '1', '3',
        '--widths', '8', '16', '--train-steps', '2', '--batch-size', '2',
        '--input-size', '8', '--threads', '1', '--no-progress', '--out-dir',
        tmp_path, '--name', 'recon')
    with open(tmp_path / 'recon.json') as f:
        records = json.load(f)['records']
    assert len(records) == len(SCHEMES) * 2 * 2 * 2
    assert all(math.isfinite(r['max_error']) for r in records)
    image = matplotlib.image.imread(str(tmp_path / 'recon.png'))
    assert image.shape[:2] == (420, 1100)
    assert image.std() > 0
    # the table: one row per model and dtype
    assert stdout.count('| float32 |') == stdout.count('| float64 |') == \
        len(SCHEMES) * 2
