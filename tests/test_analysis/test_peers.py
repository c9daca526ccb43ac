import json

import pytest
import torch
from torch.nn.modules.batchnorm import _BatchNorm

from mmrevode.analysis.memory import MemoryMeter
from mmrevode.analysis.peers import (available_runners, compare_peers,
                                     gradient_errors, unit_and_input,
                                     unit_runner)

TINY = {
    'HamiltonianNet': "HamiltonianNet:{'blocks': [3, 1], 'widths': [8, 16]}",
    'RevNet': "RevNet:{'blocks': [3, 1], 'widths': [8, 16]}",
}


@pytest.mark.parametrize('model', list(TINY))
def test_every_runner_computes_the_same_gradients(model):
    unit, x = unit_and_input(TINY[model], 4, 8)
    runners = available_runners()
    errors = gradient_errors(unit, x, runners)
    assert set(errors) == set(runners)
    for runner, result in errors.items():
        assert result['missing_grads'] == 0, runner
        assert result['grad_error'] < 1e-12, runner
    # mmrevode's backward and its checkpoint mode leave the running
    # statistics as one forward does
    for runner in ('mmrevode', 'plain', 'checkpoint'):
        assert errors[runner]['bn_updates_per_step'] == 1
    # the unit itself is untouched: its own modules, its own mode
    assert unit.mode == 'reversible'
    assert {m.num_batches_tracked.item()
            for m in unit.modules() if isinstance(m, _BatchNorm)} == {1}


def test_peers_wrap_the_units_own_parameters():
    unit, _ = unit_and_input(TINY['RevNet'], 2, 8)
    params = {id(p) for p in unit.parameters()}
    for runner in available_runners():
        module = unit_runner(unit, runner)
        assert {id(p) for p in module.parameters()} == params, runner


@pytest.mark.parametrize('model', ['MidpointNet', 'LeapfrogNet'])
def test_peers_refuse_other_units(model):
    unit, _ = unit_and_input(f"{model}:{{'blocks': [2], 'widths': [8]}}", 2,
                             8)
    with pytest.raises(ValueError, match='additive couplings of channel'):
        unit_runner(unit, 'revlib')


def test_compare_peers_records():
    records = compare_peers(
        TINY['HamiltonianNet'], ['mmrevode', 'plain'], batch_size=2,
        input_size=8, steps=1, warmup=0, malloc_trim_threshold=-1)
    assert [r['runner'] for r in records] == ['mmrevode', 'plain']
    plain = records[1]
    assert plain['time_ratio_to_plain'] == 1.0
    assert records[0]['saved_bytes'] < plain['saved_bytes']
    assert records[0]['peak_bytes'] is None


@pytest.mark.slow
def test_command_line(tmp_path, run_tool):
    stdout = run_tool('benchmark', TINY['RevNet'], '--peers', '--batch-size',
                      '2', '--input-size', '8', '--steps', '1', '--warmup',
                      '0', '--out-dir', tmp_path, '--name', 'peers')
    assert '| RevNet-' in stdout and '| mmrevode |' in stdout
    # a peer that is not installed is named, with the extra that brings it
    missing = [p for p in ('memcnn', 'revlib')
               if p not in available_runners()]
    assert (f'Not installed: {", ".join(missing)};' in stdout) == bool(
        missing), stdout
    if missing:
        assert 'pip install -e ".[bench]"' in stdout
    with open(tmp_path / 'peers.json') as f:
        result = json.load(f)
    assert {r['runner'] for r in result['records']} == set(
        result['runners'])
    # peaks measured (in a fresh process) where the resident set can be read
    measured = MemoryMeter('cpu').method is not None
    for record in result['records']:
        if measured:
            assert isinstance(record['peak_bytes'], int), record
            assert record['peak_bytes'] >= 0, record
        else:
            assert record['peak_bytes'] is None, record


def test_input_is_left_alone():
    """The tensor each runner is given keeps its values (and storage)
    through forward and backward."""
    unit, x = unit_and_input(TINY['HamiltonianNet'], 2, 8)
    for runner in available_runners():
        given = x.clone().requires_grad_()
        unit_runner(unit, runner)(given).sum().backward()
        assert given.untyped_storage().nbytes() == x.numel() * 4, runner
        assert torch.equal(given.detach(), x), runner
