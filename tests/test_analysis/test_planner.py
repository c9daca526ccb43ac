import argparse
import itertools
import json
import os.path as osp

import pytest

from mmrevode.analysis import (BudgetError, CostModel, calibrate, cfg_option,
                               measure_plans, parse_bytes, parse_spec)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TINY = "HamiltonianNet:{'blocks': [2, 1, 2], 'widths': [8, 16, 32]}"
RUN = dict(batch_size=4, input_size=(16, 8), steps=1, warmup=0)


@pytest.fixture(scope='module')
def costs():
    return calibrate(parse_spec(TINY), **RUN)


@pytest.mark.parametrize('text, expected', [
    ('2GiB', 2 * 2**30),
    ('500MiB', 500 * 2**20),
    ('1.5 GB', 1_500_000_000),
    ('64kib', 64 * 1024),
    ('123456', 123456),
    (123456, 123456),
    ('10B', 10),
])
def test_parse_bytes(text, expected):
    assert parse_bytes(text) == expected


@pytest.mark.parametrize('text', ['lots', '2 GiBs', '-1MiB', '', 'MiB'])
def test_parse_bytes_refuses_what_it_cannot_read(text):
    with pytest.raises(ValueError, match='memory size'):
        parse_bytes(text)


def test_front_is_the_best_of_all_plans():
    unit = dict(reversible=(1, 4.0), plain=(8, 3.0), checkpoint=(3, 4.5))
    costs = CostModel(
        unit_bytes=[{m: c[0] * scale for m, c in unit.items()}
                    for scale in (4, 2, 1)],
        unit_time=[{m: c[1] for m, c in unit.items()}] * 3,
        rest_bytes=5,
        rest_time=1.0)
    plans = costs.all_plans()
    assert len(plans) == 27
    front = costs.front()
    assert [p['saved_bytes'] for p in front] == sorted(
        p['saved_bytes'] for p in front)
    times = [p['step_time_s'] for p in front]
    assert times == sorted(times, reverse=True)
    for budget in range(0, 100, 3):
        fitting = [p for p in plans if p['saved_bytes'] <= budget]
        if not fitting:
            with pytest.raises(BudgetError):
                costs.choose(budget)
            continue
        best = min(p['step_time_s'] for p in fitting)
        chosen = costs.choose(budget)
        assert chosen['saved_bytes'] <= budget
        assert chosen['step_time_s'] == best
    assert costs.choose(10**6)['modes'] == ['plain'] * 3


def test_chosen_plan_fits_its_budget_when_measured(costs):
    assert costs.num_units == 3 and costs.modes == (
        'reversible', 'plain', 'checkpoint')
    plain, _ = costs.predict(['plain'] * 3)
    reversible, _ = costs.predict(['reversible'] * 3)
    for budget in (reversible, (plain + reversible) // 2, plain - 1):
        plan = costs.choose(budget)
        measured, = measure_plans(parse_spec(TINY), [plan['modes']], **RUN)
        assert measured['modes'] == plan['modes']
        assert measured['saved_bytes'] <= budget
        # saved bytes are additive over the parts: the prediction is exact
        assert measured['saved_bytes'] == plan['saved_bytes']
        assert measured['time_ratio_to_plain'] > 0


def test_a_budget_nothing_fits_names_the_smallest(costs):
    smallest, _ = costs.predict(['reversible'] * 3)
    with pytest.raises(BudgetError) as error:
        costs.choose(smallest - 1)
    message = str(error.value)
    assert 'smallest reachable is' in message
    assert f'({smallest} bytes, predicted)' in message
    # the plan named is one of the smallest (with one block per unit,
    # checkpointing a unit saves what reversing it does)
    assert f"mode={list(error.value.smallest['modes'])}" in message
    assert costs.predict(error.value.smallest['modes'])[0] == smallest
    assert 'batch 4, 16x8 images' in message
    assert error.value.smallest['saved_bytes'] == smallest


def test_cfg_option_applies_the_plan():
    from mmengine.config import DictAction
    assert cfg_option(['plain'] * 3) == 'model.backbone.mode=plain'
    option = cfg_option(['reversible', 'plain', 'plain'])
    assert option == "model.backbone.mode=\"['reversible','plain','plain']\""
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    # what the shell passes on
    args = parser.parse_args(['--cfg-options', option.replace('"', '')])
    assert args.cfg_options == {
        'model.backbone.mode': ['reversible', 'plain', 'plain']
    }


def test_command_line(tmp_path, start_tool):
    common = [
        TINY, '--batch-size', '4', '--input-size', '16', '8', '--steps', '1',
        '--warmup', '0', '--device', 'cpu', '--out-dir',
        str(tmp_path)
    ]
    # the three runs side by side: which plan is fastest is a measurement,
    # that it fits is not
    fits = start_tool('plan_memory', *common, '--budget', '1GiB', '--name',
                      'fits')
    none = start_tool('plan_memory', *common, '--budget', '100', '--name',
                      'none')
    every = start_tool('plan_memory', *common, '--all-plans', '--name',
                       'all')
    out, err = fits.communicate(timeout=600)
    assert fits.returncode == 0, err[-3000:]
    assert 'Apply it with:  --cfg-options model.backbone.mode=' in out
    with open(tmp_path / 'fits.json') as f:
        result = json.load(f)['results'][0]
    assert result['plan']['saved_bytes'] <= result['budget_bytes']
    _, err = none.communicate(timeout=600)
    assert none.returncode == 1, err[-3000:]
    assert 'smallest reachable is' in err
    assert 'Traceback' not in err
    combinations = list(itertools.product('RPC', repeat=3))
    _, err = every.communicate(timeout=600)
    assert every.returncode == 0, err[-3000:]
    with open(tmp_path / 'all.json') as f:
        result = json.load(f)['results'][0]
    assert len(result['measured_plans']) == len(combinations)
    assert (tmp_path / 'all.png').stat().st_size > 0


def load_plan_memory():
    """``tools/analysis_tools/plan_memory.py`` as a module, to call its
    ``main(argv)`` in this process."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'plan_memory_tool',
        osp.join(ROOT, 'tools', 'analysis_tools', 'plan_memory.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_exact_mode_is_calibrated_and_predicted_exactly(costs):
    exact = calibrate(
        parse_spec(TINY), backbone_options=dict(exact=True), **RUN)
    assert exact.info['exact'] and not costs.info['exact']
    # the units hold float64 pairs: twice the saved bytes of a float32
    # reversible or checkpointed unit
    for unit, floating in zip(exact.unit_bytes, costs.unit_bytes):
        assert unit['reversible'] == 2 * floating['reversible']
        assert unit['checkpoint'] == 2 * floating['checkpoint']
    plans = [list(p) for p in itertools.product(exact.modes, repeat=3)]
    measured = measure_plans(
        parse_spec(TINY), plans, backbone_options=dict(exact=True), **RUN)
    assert [m['modes'] for m in measured] == plans
    for plan in measured:
        assert plan['saved_bytes'] == exact.predict(plan['modes'])[0], plan
    smallest, _ = exact.predict(['reversible'] * 3)
    with pytest.raises(BudgetError, match=r'\(exact=True\) at batch 4'):
        exact.choose(smallest - 1)


def test_command_line_in_exact_mode(tmp_path, capsys):
    tool = load_plan_memory()
    common = ['--batch-size', '4', '--input-size', '16', '8', '--steps',
              '1', '--warmup', '0', '--device', 'cpu', '--out-dir',
              str(tmp_path), '--budget', '1GiB', '--modes', 'reversible',
              'plain']
    config = osp.join(ROOT, 'configs', 'revode', 'hamiltonian_digits.py')
    for name, model, options in (
            ('spec', TINY, ['--backbone-options', 'exact=True']),
            ('config', config,
             ['--cfg-options', 'model.backbone.exact=True'])):
        tool.main([model, *common, *options, '--name', name])
        out = capsys.readouterr().out
        assert 'Exact mode (exact=True)' in out
        assert 'model.backbone.exact=True' in out.split('Apply it with:')[1]
        with open(tmp_path / f'{name}.json') as f:
            result = json.load(f)['results'][0]
        assert result['exact'] and result['costs']['info']['exact']
        plan = result['plan']
        measured = next(m for m in result['measured_plans']
                        if m['modes'] == plan['modes'])
        assert measured['saved_bytes'] == plan['saved_bytes']
    # a spec has no config to change: one line that says what to give
    with pytest.raises(SystemExit) as error:
        tool.main([TINY, *common, '--cfg-options',
                   'model.backbone.exact=True'])
    assert error.value.code == 2
    assert 'give the backbone\'s arguments with --backbone-options' in \
        capsys.readouterr().err
