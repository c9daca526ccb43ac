"""tools/analysis_tools/benchmark.py on tiny models."""
import importlib.util
import json
import math
import os
import os.path as osp
import subprocess
import sys

import matplotlib.image
import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SPEC = importlib.util.spec_from_file_location(
    'benchmark', osp.join(ROOT, 'tools', 'analysis_tools', 'benchmark.py'))
benchmark = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(benchmark)

BLOCKS = (1, 2, 4)
SPECS = benchmark.sweep_specs('HamiltonianNet', BLOCKS, [8])
# The allocator setting would last for the rest of the test session.
OPTIONS = dict(batch_sizes=[2], input_size=8, steps=2, warmup=1,
               progress_bar=False, malloc_trim_threshold=-1)


@pytest.fixture(autouse=True)
def one_thread():
    """Timing loops of many tiny ops crawl when threads share busy cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='module')
def sweep():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return benchmark.run(SPECS, **OPTIONS)
    finally:
        torch.set_num_threads(threads)


def by_mode(records, mode):
    return sorted((r for r in records if r['mode'] == mode),
                  key=lambda r: r['depth'])


def test_parse_spec():
    spec = benchmark.parse_spec('HamiltonianNet:110')
    assert spec['name'] == 'HamiltonianNet-110'
    assert spec['blocks'] == [9, 9, 9] and spec['depth'] == 110
    spec = benchmark.parse_spec(
        benchmark.sweep_specs('HamiltonianNet', [100], [32, 64, 128])[0])
    assert spec['depth'] == 1202 and spec['name'] == 'HamiltonianNet-1202'
    assert spec['arch'] == dict(blocks=[100] * 3, widths=[32, 64, 128])
    assert benchmark.parse_spec('MidpointNet:62')['depth'] == 62
    with pytest.raises(ValueError):
        benchmark.parse_spec('HamiltonianNet:7')
    with pytest.raises(ValueError):
        benchmark.parse_spec('NoSuchNet:7')
    with pytest.raises(ValueError):
        benchmark.parse_spec('HamiltonianNet')


def test_saved_bytes_are_deduplicated_by_storage():
    x = torch.randn(1000, requires_grad=True)
    w = torch.randn(1000, requires_grad=True)
    with benchmark.count_saved_bytes() as counted:
        y = (x * w).sum() + (x * x).sum() + (x[:10] * 2).sum()
    assert counted['bytes'] == 2 * 4000  # x (once, views too) and w
    with benchmark.count_saved_bytes(exclude=[w]) as counted:
        y = (x * w).sum()
    assert counted['bytes'] == 4000
    y.backward()


def test_memory_meter_sees_an_allocation():
    meter = benchmark.MemoryMeter('cpu')
    if meter.method is None:
        pytest.skip('no /proc/self/clear_refs here')
    meter.start()
    block = torch.ones(64 * 2**20 // 4)  # 64 MiB, written
    held = meter.current()
    del block
    peak = meter.peak()
    assert held > 48 * 2**20
    assert peak > 48 * 2**20


def test_records_schema(sweep):
    records = sweep['records']
    assert len(records) == len(SPECS) * len(benchmark.MODES)
    for record in records:
        assert set(benchmark.RECORD_FIELDS) <= set(record)
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
    assert machine['malloc'] is None or 'M_TRIM_THRESHOLD' in machine['malloc']
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
    spec = benchmark.parse_spec(
        benchmark.sweep_specs('HamiltonianNet', [16], [16])[0])
    records = benchmark.benchmark_model(
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


def test_table_and_plot(sweep, tmp_path):
    text = benchmark.table(sweep['records'])
    assert text.count('\n') == len(sweep['records']) + 1
    assert 'HamiltonianNet-18' in text
    path = str(tmp_path / 'bench.png')
    benchmark.plot(sweep['records'], path, title='tiny')
    image = matplotlib.image.imread(path)
    assert image.shape[:2] == (420, 2000)
    assert image.std() > 0


@pytest.mark.slow
def test_command_line(tmp_path):
    # In a process of its own: the tool changes the allocator's settings.
    json_path = str(tmp_path / 'out' / 'bench.json')
    png_path = str(tmp_path / 'out' / 'bench.png')
    command = [
        sys.executable,
        osp.join(ROOT, 'tools', 'analysis_tools', 'benchmark.py'),
        'HamiltonianNet', 'MidpointNet', '--blocks-per-unit', '1', '2',
        '--widths', '8', '--batch-size', '2', '--input-size', '8',
        '--steps', '1', '--warmup', '0', '--modes', 'reversible', 'plain',
        '--threads', '1', '--json', json_path, '--plot', png_path
    ]
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep +
               os.environ.get('PYTHONPATH', ''))
    done = subprocess.run(command, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert '| HamiltonianNet-6 | 2 | reversible |' in done.stdout
    with open(json_path) as f:
        saved = json.load(f)
    assert len(saved['records']) == 2 * 2 * 2
    assert {r['model'] for r in saved['records']} == {
        'HamiltonianNet', 'MidpointNet'
    }
    assert saved['machine']['malloc'] is None or \
        'M_TRIM_THRESHOLD' in saved['machine']['malloc']
    for record in saved['records']:
        assert set(benchmark.RECORD_FIELDS) <= set(record)
    assert osp.getsize(png_path) > 0
    with pytest.raises(SystemExit):
        benchmark.main(['HamiltonianNet:110', '--blocks-per-unit', '1'])
