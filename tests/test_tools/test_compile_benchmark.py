"""tools/analysis_tools/compile_benchmark.py on a tiny network."""
import json

from tool_utils import output, run_tool

TINY = """
_base_ = {base!r}
model = dict(backbone=dict(arch=dict(_delete_=True, blocks=[1, 1],
                                     widths=[8, 16])),
             head=dict(in_channels=16))
"""


def test_reports_times_graphs_and_gradients(tmp_path):
    from tool_utils import REPO
    config = tmp_path / 'tiny.py'
    config.write_text(
        TINY.format(base=f'{REPO}/configs/revode/hamiltonian_cifar10.py'))
    out = tmp_path / 'compile.json'
    result = run_tool('analysis_tools/compile_benchmark.py', config,
                      '--batch-size', 4, '--shape', 16, 16, '--steps', 2,
                      '--threads', 1, '--backend', 'aot_eager', '--json',
                      out)
    assert result.returncode == 0, output(result)
    with open(out) as f:
        report = json.load(f)
    results = report['results']
    assert list(results) == ['eager', 'compiled', 'compiled+steps']
    assert results['eager']['graphs'] == 0
    for mode in ('compiled', 'compiled+steps'):
        res = results[mode]
        # one opaque Function per unit: the graph breaks
        assert res['graphs'] >= 2 and res['graph_breaks'] >= 2
        assert all('disable' in r for r in res['break_reasons'])
        assert len(res['step_times_s']) == 2 and res['step_s'] > 0
        assert res['grad_rel_diff'] < 1e-4
    assert results['compiled+steps']['graphs'] > results['compiled'][
        'graphs']
    assert 'compiled+steps: first step' in result.stdout
    # the progress bar (3 compilations, 3 x 2 timed steps) goes to stderr
    assert '9/9' in result.stderr and 'elapsed' not in result.stdout
