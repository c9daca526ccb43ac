"""A tool whose optional package is missing ends with one line that names
the package and the pip command of the extra that installs it."""
import sys

import pytest
from tool_utils import REPO, load_script

CONFIG = f'{REPO}/configs/revode/hamiltonian_digits.py'
DET_CONFIG = (f'{REPO}/configs/revode/det/'
              'retinanet_hamiltonian-det38_fpn_1x_coco.py')
DEPLOY = 'pip install -e ".[deploy]"'

CASES = {
    'deployment/pytorch2onnx.py (onnx)':
    ('tools/deployment/pytorch2onnx.py', 'onnx',
     [CONFIG, 'none.pth', '--output-file', 'x.onnx'],
     f'pytorch2onnx.py needs onnx: {DEPLOY}'),
    'deployment/pytorch2onnx.py (onnxruntime)':
    ('tools/deployment/pytorch2onnx.py', 'onnxruntime',
     [CONFIG, 'none.pth', '--output-file', 'x.onnx'],
     f'pytorch2onnx.py needs onnxruntime: {DEPLOY}'),
    'deployment/pytorch2onnx.py --dynamo (onnxscript)':
    ('tools/deployment/pytorch2onnx.py', 'onnxscript',
     [CONFIG, 'none.pth', '--output-file', 'x.onnx', '--dynamo'],
     f'pytorch2onnx.py needs onnxscript: {DEPLOY}'),
    'det/train.py': ('tools/det/train.py', 'mmdet', [DET_CONFIG],
                     'train.py needs mmdet: pip install -e ".[det]"'),
    'det/test.py': ('tools/det/test.py', 'mmdet', [DET_CONFIG, 'none.pth'],
                    'test.py needs mmdet: pip install -e ".[det]"'),
    'analysis_tools/stability.py':
    ('tools/analysis_tools/stability.py', 'matplotlib', ['MidpointNet:92'],
     'stability.py needs matplotlib: pip install -e .'),
    'analysis_tools/amp_drift.py':
    ('tools/analysis_tools/amp_drift.py', 'matplotlib', ['HamiltonianNet:38'],
     'amp_drift.py needs matplotlib: pip install -e .'),
    'analysis_tools/benchmark.py':
    ('tools/analysis_tools/benchmark.py', 'matplotlib', ['HamiltonianNet:38'],
     'benchmark.py needs matplotlib: pip install -e .'),
    'analysis_tools/reconstruction_error.py':
    ('tools/analysis_tools/reconstruction_error.py', 'matplotlib',
     ['MidpointNet:20'],
     'reconstruction_error.py needs matplotlib: pip install -e .'),
    'analysis_tools/plan_memory.py --all-plans':
    ('tools/analysis_tools/plan_memory.py', 'matplotlib',
     ['HamiltonianNet:38', '--all-plans'],
     'plan_memory.py needs matplotlib: pip install -e .'),
    'reproduce_paper.py':
    ('tools/reproduce_paper.py', 'matplotlib', ['--launcher', 'none'],
     'reproduce_paper.py needs matplotlib: pip install -e .'),
    'analysis_tools/collect_results.py':
    ('tools/analysis_tools/collect_results.py', 'matplotlib', ['.'],
     'collect_results.py needs matplotlib: pip install -e .'),
}


@pytest.mark.parametrize('case', list(CASES))
def test_missing_package_is_one_line(case, monkeypatch, tmp_path):
    script, module, argv, message = CASES[case]
    tool = load_script(script)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, module, None)  # import fails
    with pytest.raises(SystemExit) as exit_info:
        tool.main(argv)
    # Python prints a SystemExit's text on stderr and exits with status 1
    assert exit_info.value.code == message


def test_message_names_every_missing_package_and_extra(monkeypatch):
    from mmrevode.utils.optional import require_packages
    monkeypatch.setitem(sys.modules, 'onnx', None)
    monkeypatch.setitem(sys.modules, 'memcnn', None)
    with pytest.raises(SystemExit) as exit_info:
        require_packages('tool.py', 'onnx', 'memcnn', 'torch')
    assert exit_info.value.code == (
        'tool.py needs onnx, memcnn: pip install -e ".[bench]" and '
        'pip install -e ".[deploy]"')
    require_packages('tool.py', 'torch')  # present: nothing happens
