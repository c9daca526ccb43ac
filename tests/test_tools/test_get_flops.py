"""tools/analysis_tools/get_flops.py prints MMPretrain's tables (its
``main`` in this process; an argument error in a process of its own)."""
import os.path as osp
import re

import pytest
import torch
from mmengine.analysis import FlopAnalyzer, parameter_count
from mmengine.analysis.print_helper import _format_size
from tool_utils import REPO, run_main, run_tool

from mmrevode.utils.tools import build_from_config

CONFIGS = ['hamiltonian_cifar10.py', 'midpoint_cifar10.py',
           'resnet32_cifar10.py']


@pytest.mark.parametrize('config', CONFIGS)
def test_totals_and_table(config, capsys):
    path = osp.join(REPO, 'configs', 'revode', config)
    assert run_main('analysis_tools/get_flops.py', path, '--shape', 32, 32,
                    '--no-arch') == 0
    out = capsys.readouterr().out
    assert 'Input shape: (3, 32, 32)' in out
    flops = re.search(r'^Flops: (\S+)$', out, re.M).group(1)
    params = re.search(r'^Params: (\S+)$', out, re.M).group(1)

    _, model = build_from_config(path)
    model.eval()
    model.forward = model.extract_feat
    counter = FlopAnalyzer(model, (torch.randn(1, 3, 32, 32), ))
    assert flops == _format_size(counter.total())
    assert params == _format_size(parameter_count(model)[''])
    # the per-module table, to depth 3
    assert '| module' in out and '#flops' in out
    assert re.search(r'^\|\s+backbone\s', out, re.M)
    assert re.search(r'^\|\s+backbone\.\w+', out, re.M)


def test_arch_and_depth(capsys):
    path = osp.join(REPO, 'configs', 'revode', 'hamiltonian_digits.py')
    assert run_main('analysis_tools/get_flops.py', path, '--shape', 32,
                    '--max-depth', 1, '--with-head') == 0
    out = capsys.readouterr().out
    # the model printed with the counts of every module
    assert 'HamiltonianNet(' in out
    table = out[out.index('| module'):]
    assert 'backbone.units' not in table
    assert re.search(r'^\|\s+head\.fc\s.*\|\s+0.64K\s', table, re.M)


def test_bad_shape_is_one_clear_message():
    path = osp.join(REPO, 'configs', 'revode', 'hamiltonian_digits.py')
    result = run_tool('analysis_tools/get_flops.py', path, '--shape', 1, 2, 3)
    assert result.returncode == 2
    assert '--shape: an image size is H W' in result.stderr
