"""MMPretrain's own tools (``mmpretrain/.mim/tools``) on a digits config,
and what a digits training run prints."""
import os.path as osp
import subprocess
import sys

import pytest
from tool_utils import REPO

mmpretrain = pytest.importorskip('mmpretrain')
MIM_TOOLS = osp.join(osp.dirname(mmpretrain.__file__), '.mim', 'tools')
DIGITS = osp.join(REPO, 'configs', 'revode', 'hamiltonian_digits.py')


def mim_command(tool, *args):
    """The command line and environment of MMPretrain's ``tools/TOOL``
    with this checkout importable."""
    import os
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1',
               MPLBACKEND='Agg')
    env['PYTHONPATH'] = os.pathsep.join(
        [REPO] + [p for p in [env.get('PYTHONPATH')] if p])
    return [sys.executable, osp.join(MIM_TOOLS, tool)
            ] + [str(a) for a in args], env


def run_mim_tool(tool, *args, timeout=600):
    """Run MMPretrain's ``tools/TOOL`` with this checkout importable."""
    command, env = mim_command(tool, *args)
    return subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=timeout,
        cwd=REPO)


def _output(result):
    return f'stdout:\n{result.stdout[-5000:]}\nstderr:\n{result.stderr[-5000:]}'


@pytest.mark.slow
def test_a_digits_run_patches_nothing_in_mmengine(digits_run):
    _, checkpoint, log = digits_run
    assert checkpoint.exists()
    # MMEngine's warning when OptimWrapper.step is replaced at run time
    assert 'has been overridden' not in log, log[-3000:]


@pytest.fixture(scope='module')
def mim_digits_run(tmp_path_factory):
    """One epoch of the digits config through MMPretrain's own
    tools/train.py (persistent workers by default: the digits loaders turn
    them off). Returns the work directory."""
    pytest.importorskip('sklearn')
    work_dir = tmp_path_factory.mktemp('mim_digits_run')
    result = run_mim_tool('train.py', DIGITS, '--work-dir', work_dir,
                          '--cfg-options', 'train_cfg.max_epochs=1')
    assert result.returncode == 0, _output(result)
    assert (work_dir / 'epoch_1.pth').exists()
    return work_dir


def _needs_matplotlib_below_3_11():
    import matplotlib
    from mmengine.utils import digit_version
    if digit_version(matplotlib.__version__) >= digit_version('3.11.0'):
        pytest.skip(f'matplotlib {matplotlib.__version__}: MMPretrain 1.2 '
                    "draws with matplotlib < 3.11 (requirements/runtime.txt)")


@pytest.mark.slow
def test_mim_test_py(mim_digits_run, tmp_path):
    out = tmp_path / 'metrics.pkl'
    result = run_mim_tool('test.py', DIGITS, mim_digits_run / 'epoch_1.pth',
                          '--work-dir', tmp_path, '--out', out)
    assert result.returncode == 0, _output(result)
    assert 'accuracy/top1' in result.stdout + result.stderr
    assert out.stat().st_size > 0


@pytest.mark.slow
def test_mim_get_flops():
    result = run_mim_tool('analysis_tools/get_flops.py', DIGITS, '--shape',
                          '32')
    assert result.returncode == 0, _output(result)
    # the figure of configs/revode/metafiles/hamiltonian.yml
    assert 'Flops: 7.623M' in result.stdout, _output(result)


@pytest.mark.slow
def test_mim_analyze_logs(mim_digits_run, tmp_path):
    (scalars, ) = mim_digits_run.glob('*/vis_data/scalars.json')
    out = tmp_path / 'loss.png'
    result = run_mim_tool('analysis_tools/analyze_logs.py', 'plot_curve',
                          scalars, '--keys', 'loss', '--out', out)
    assert result.returncode == 0, _output(result)
    assert out.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


BROWSE_MODES = ('original', 'transformed', 'concat', 'pipeline')


@pytest.fixture(scope='module')
def browsed(tmp_path_factory):
    """browse_dataset.py in every mode, the four side by side: ``{mode:
    (exit status, output, folder)}``."""
    _needs_matplotlib_below_3_11()
    root = tmp_path_factory.mktemp('browsed')
    started = {}
    for mode in BROWSE_MODES:
        command, env = mim_command('visualization/browse_dataset.py', DIGITS,
                                   '-o', root / mode, '-n', '2', '-m', mode)
        with open(root / f'{mode}.log', 'w') as log:
            started[mode] = subprocess.Popen(
                command, env=env, cwd=REPO, stdout=log,
                stderr=subprocess.STDOUT)
    return {
        mode: (run.wait(timeout=600), (root / f'{mode}.log').read_text(),
               root / mode)
        for mode, run in started.items()
    }


@pytest.mark.slow
@pytest.mark.parametrize('mode', BROWSE_MODES)
def test_mim_browse_dataset(mode, browsed):
    status, log, folder = browsed[mode]
    assert status == 0, log[-6000:]
    assert sorted(p.name for p in folder.iterdir()) == ['0.jpg', '1.jpg']


@pytest.mark.slow
def test_mim_vis_cam(mim_digits_run, tmp_path):
    """vis_cam.py feeds the test pipeline ``{'img_path': FILE}``."""
    import mmcv
    grad_cam = pytest.importorskip('pytorch_grad_cam')
    pytest.importorskip('pkg_resources')  # setuptools < 82
    from importlib.metadata import version
    from mmengine.utils import digit_version
    if digit_version(version('grad-cam')) >= digit_version('1.5.0'):
        pytest.skip(f'grad-cam {grad_cam}: vis_cam.py needs grad-cam < 1.5')

    from mmrevode.datasets import Digits
    image = str(tmp_path / 'digit.png')
    mmcv.imwrite(Digits(split='test', pipeline=[])[0]['img'], image)
    out = tmp_path / 'cam.png'
    result = run_mim_tool('visualization/vis_cam.py', image, DIGITS,
                          mim_digits_run / 'epoch_1.pth', '--save-path', out)
    assert result.returncode == 0, _output(result)
    cam = mmcv.imread(str(out))
    assert cam is not None and cam.shape[:2] == (32, 32)
