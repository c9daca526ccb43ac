"""tools/analysis_tools/amp_drift.py: the table of docs/distributed.md, its
JSON and its figure; a GPU device on a machine without one is one line."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

TINY = "HamiltonianNet:{'blocks': [1, 1], 'widths': [8, 16]}"


@pytest.mark.slow
def test_table_json_and_figure(tmp_path, run_tool):
    stdout = run_tool('amp_drift', TINY, '--batch-size', 4, '--input-size', 8,
                      '--seeds', 1, '--out-dir', tmp_path)
    assert ('| model | bf16 vs fp32, plain autograd (the AMP drift) | '
            'bf16 reversible vs fp32 plain |') in stdout
    assert 'elapsed' not in stdout  # the progress bar is on stderr
    with open(tmp_path / 'amp_drift.json') as f:
        result = json.load(f)
    assert result['dtype'] == 'bfloat16' and TINY in result['models']
    assert osp.getsize(tmp_path / 'amp_drift.png') > 1000


@pytest.mark.skipif(torch.cuda.is_available(), reason='needs a CPU-only '
                    'machine')
def test_cuda_without_a_gpu_is_one_line():
    result = subprocess.run(
        [sys.executable,
         osp.join(ROOT, 'tools', 'analysis_tools', 'amp_drift.py'),
         'HamiltonianNet:38', '--device', 'cuda'],
        env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True,
        text=True, timeout=300)
    assert result.returncode == 1
    assert 'Traceback' not in result.stderr
    assert 'this machine has no GPU' in result.stderr
