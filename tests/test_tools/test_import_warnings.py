"""The tools keep MMCV's import-time note about missing compiled ops
(printed by every command of the classification install, with MMCV-lite)
out of their output, without silencing it for users' own code."""
import ast
import glob
import os.path as osp
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOLS = sorted(
    glob.glob(osp.join(REPO, 'tools', '**', '*.py'), recursive=True) +
    [osp.join(REPO, 'demo', 'image_demo.py')])
# MMCV-lite has no mmcv.ops.multi_scale_deform_attn; hiding it gives the
# same import as the classification install
LITE = "import sys; sys.modules['mmcv.ops.multi_scale_deform_attn'] = None; "


def warnings_of(code):
    proc = subprocess.run(
        [sys.executable, '-W', 'default', '-c', LITE + code],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stderr


def first_package_import(tree):
    """The top-level statement that first imports mmrevode."""
    for node in tree.body:
        for inner in ast.walk(node):
            if isinstance(inner, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in inner.names] + [
                    getattr(inner, 'module', None) or '']
                if any(n.split('.')[0] == 'mmrevode' for n in names):
                    return node
    return None


@pytest.mark.parametrize('path', TOOLS, ids=lambda p: osp.relpath(p, REPO))
def test_every_tool_imports_the_package_with_the_note_silenced(path):
    tree = ast.parse(open(path).read())
    node = first_package_import(tree)
    assert node is not None
    assert isinstance(node, ast.With), (
        f'{path}: the first import of mmrevode must sit in the '
        '`with warnings.catch_warnings()` block that ignores MMCV\'s note')
    assert 'MultiScaleDeformable' in ast.unparse(node)


@pytest.mark.slow
def test_a_tool_prints_no_note_but_user_code_does():
    run_train = ("import runpy; sys.argv = ['tools/train.py', '--help']; "
                 "runpy.run_path('tools/train.py', run_name='__main__')")
    assert 'MultiScaleDeformableAttention' not in warnings_of(run_train)
    # users' own `import mmrevode` still sees it: nothing global is changed
    assert 'MultiScaleDeformableAttention' in warnings_of('import mmrevode')
