"""mmrevode.analysis.benchmark and tools/analysis_tools/benchmark.py on tiny
models."""
import json
import math

import matplotlib.image
import pytest
import torch

from mmrevode.analysis import (MODES, RECORD_FIELDS, benchmark_model,
                               parse_spec, run_benchmark)
from mmrevode.analysis.benchmark import time_model
from mmrevode.analysis.memory import has_glibc
from mmrevode.analysis.models import sweep_specs

BLOCKS = (1, 2, 4)
SPECS = sweep_specs('HamiltonianNet', BLOCKS, [8])
# The allocator setting would last for the rest of the test session.
OPTIONS = dict(batch_sizes=[2], input_size=8, steps=2, warmup=1,
               progress_bar=False, malloc_trim_threshold=-1)
TINY_DET = "HamiltonianNet:{'blocks': [1, 1, 1, 1], 'widths': [8, 16, 32, 64]}"


@pytest.fixture(scope='module')
def sweep():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return run_benchmark(SPECS, **OPTIONS)
    finally:
        torch.set_num_threads(threads)


def by_mode(records, mode):
    return sorted((r for r in records if r['mode'] == mode),
                  key=lambda r: r['depth'])


def test_records_schema(sweep):
    records = sweep['records']
    assert len(records) == len(SPECS) * len(MODES)
    for record in records:
        assert set(RECORD_FIELDS) <= set(record)
        assert record['model'] == 'HamiltonianNet'
        assert record['batch_size'] == 2 and record['input_size'] == 8
        assert record['saved_bytes'] > 0
        assert len(record['step_times_s']) == OPTIONS['steps']
        assert all(
            math.isfinite(t) and t > 0 for t in record['step_times_s'])
        assert len(record['cpu_times_s']) == OPTIONS['steps']
        assert all(t >= 0 for t in record['cpu_times_s'])
        assert math.isfinite(record['step_time_s'])
        assert math.isfinite(record['cpu_time_s'])
        assert math.isfinite(record['time_ratio_to_plain'])
        if record['memory_method'] is not None:
            assert record['peak_bytes'] > 0
    assert [r['depth'] for r in by_mode(records, 'plain')] == \
        [4 * n + 2 for n in BLOCKS]
    for record in by_mode(records, 'plain'):
        assert record['saved_ratio_to_plain'] == 1.0
        assert record['time_ratio_to_plain'] == 1.0
        assert record['cpu_time_ratio_to_plain'] == 1.0
    machine = sweep['machine']
    assert machine['cpu_count'] >= 1 and machine['torch_threads'] == 1
    # malloc_trim_threshold=-1: memory measured here, glibc's defaults kept
    assert machine['malloc'] is None
    json.dumps(sweep)  # serialisable as is


def test_saved_bytes_flat_in_depth_for_reversible_only(sweep):
    records = sweep['records']
    reversible = [r['saved_bytes'] for r in by_mode(records, 'reversible')]
    plain = [r['saved_bytes'] for r in by_mode(records, 'plain')]
    checkpoint = [r['saved_bytes'] for r in by_mode(records, 'checkpoint')]
    assert len(set(reversible)) == 1, reversible
    # Plain autograd stores the same per block: linear in depth.
    per_block = (plain[1] - plain[0]) / (BLOCKS[1] - BLOCKS[0])
    assert per_block > 0
    assert plain[2] - plain[1] == pytest.approx(
        per_block * (BLOCKS[2] - BLOCKS[1]), rel=1e-6)
    # Checkpointing stores each block's input: grows, but less.
    assert checkpoint[0] < checkpoint[1] < checkpoint[2] < plain[2]
    assert reversible[0] < checkpoint[2]


def test_peak_memory_of_the_deepest_tiny_model():
    spec = parse_spec(sweep_specs('HamiltonianNet', [16], [16])[0])
    records = benchmark_model(
        spec, ['reversible', 'plain'], batch_size=8, input_size=16,
        steps=0, warmup=1)
    reversible, plain = records
    if plain['memory_method'] is None:
        pytest.skip('no memory readings here')
    # Plain autograd keeps about 6.5 MiB of activations here, reversible
    # a few hundred KiB.
    assert plain['saved_bytes'] > 4 * 2**20
    assert reversible['saved_ratio_to_plain'] < 0.1
    assert reversible['peak_bytes'] < plain['peak_bytes']
    assert reversible['forward_held_bytes'] < plain['forward_held_bytes']
    assert reversible['step_time_s'] is None  # steps=0: memory only


@pytest.mark.parametrize('frozen_stages', [-1, 1])
def test_detection_backbone_by_part(frozen_stages):
    """Inside the units the reversible backbone keeps each unit's output
    only; frozen parts keep nothing."""
    records = time_model(
        parse_spec(TINY_DET), ['reversible', 'plain'], batch_size=2,
        input_size=32, steps=0, warmup=0, head='features', by_part=True,
        backbone_options=dict(stem_type='imagenet', out_indices=(0, 1, 2, 3),
                              frozen_stages=frozen_stages))
    reversible, plain = (r['saved_bytes_by_part'] for r in records)
    assert sum(reversible.values()) == records[0]['saved_bytes']
    # unit i's output: 2 images x widths[i] x (8 / 2^i)^2 floats
    for i, width in enumerate([8, 16, 32, 64]):
        output = 2 * width * (8 // 2**i)**2 * 4
        if i < frozen_stages:
            assert f'unit{i}' not in reversible and f'unit{i}' not in plain
        else:
            assert reversible[f'unit{i}'] == output
            assert plain[f'unit{i}'] > 2 * output
    assert ('stem' in reversible) == (frozen_stages < 0)
    assert reversible['other'] == plain['other'] > 0  # the output norms


@pytest.mark.slow
def test_command_line(tmp_path, run_tool):
    out_dir = tmp_path / 'out'
    stdout = run_tool(
        'benchmark', 'HamiltonianNet', 'MidpointNet', '--blocks-per-unit',
        '1', '2', '--widths', '8', '--batch-size', '2', '--input-size', '8',
        '--steps', '1', '--warmup', '0', '--modes', 'reversible', 'plain',
        '--threads', '1', '--out-dir', out_dir, '--name', 'bench',
        '--title', 'tiny')
    assert '| HamiltonianNet-6 | 2 | reversible |' in stdout
    assert stdout.count('| MidpointNet-') == 2 * 2
    with open(out_dir / 'bench.json') as f:
        saved = json.load(f)
    assert len(saved['records']) == 2 * 2 * 2
    assert {r['model'] for r in saved['records']} == {
        'HamiltonianNet', 'MidpointNet'
    }
    # the default --malloc-trim-threshold (1 MiB) where glibc is the
    # allocator: memory measured in a fresh process so set
    assert saved['machine']['malloc'] == (
        'glibc M_MMAP_THRESHOLD=131072, M_TRIM_THRESHOLD=1048576, '
        'M_TOP_PAD=0' if has_glibc() else None)
    for record in saved['records']:
        assert set(RECORD_FIELDS) <= set(record)
    image = matplotlib.image.imread(str(out_dir / 'bench.png'))
    assert image.shape[:2] == (420, 2000)
    assert image.std() > 0


@pytest.mark.slow
def test_command_line_detection_backbone(tmp_path, run_tool):
    stdout = run_tool(
        'benchmark', TINY_DET, '--det', '--by-part', '--batch-size', '2',
        '--input-size', '32', '--steps', '1', '--warmup', '0',
        '--backbone-options', 'frozen_stages=1', '--no-progress',
        '--out-dir', tmp_path)
    assert 'Saved MiB by part:' in stdout
    with open(tmp_path / 'benchmark.json') as f:
        records = json.load(f)['records']
    assert [r['mode'] for r in records] == list(MODES)
    for record in records:
        assert record['head'] == 'features'
        assert 'unit0' not in record['saved_bytes_by_part']
        assert 'unit3' in record['saved_bytes_by_part']
