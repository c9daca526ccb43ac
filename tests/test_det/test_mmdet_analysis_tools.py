"""MMDetection's own analysis tools on our detection configs: get_flops.py,
browse_dataset.py and analyze_logs.py, run as a user runs them (from the
MMDetection wheel, with the config pointed at a generated COCO data set)."""
import glob
import os.path as osp

import pytest

pytest.importorskip('mmdet')

from det_utils import (DET_CONFIGS, config_path, mmdet_tool,  # noqa: E402
                       run, write_config)

pytestmark = pytest.mark.slow


@pytest.fixture(scope='module')
def tiny_config(tmp_path_factory, coco_root, cls_checkpoint):
    root = tmp_path_factory.mktemp('mmdet_tools')
    return str(root), write_config(
        str(root / 'tiny_retinanet.py'), config_path(DET_CONFIGS[0]),
        coco_root, cls_checkpoint[0])


@pytest.mark.parametrize('name', DET_CONFIGS)
def test_get_flops(name, tmp_path, coco_root, cls_checkpoint):
    cfg = write_config(str(tmp_path / 'tiny.py'), config_path(name),
                       coco_root, cls_checkpoint[0])
    log = run([mmdet_tool('analysis_tools/get_flops.py'), cfg,
               '--num-images', '2'], cwd=str(tmp_path))
    flops = [line for line in log.splitlines() if line.startswith('Flops:')]
    params = [line for line in log.splitlines()
              if line.startswith('Params:')]
    assert flops and params, log[-3000:]
    # A detector on a 38-layer backbone: more than a million parameters.
    assert params[0].split()[-1].endswith('M'), params[0]


def test_browse_dataset_writes_every_image(tiny_config):
    root, cfg = tiny_config
    out = osp.join(root, 'browse')
    run([mmdet_tool('analysis_tools/browse_dataset.py'), cfg,
         '--output-dir', out, '--not-show'], cwd=root)
    written = glob.glob(osp.join(out, '*.png'))
    assert len(written) == 4, written


def test_analyze_logs_of_a_training_run(tiny_config):
    root, cfg = tiny_config
    work_dir = osp.join(root, 'work_dir')
    run([mmdet_tool('train.py'), cfg, '--work-dir', work_dir], cwd=root)
    scalars = glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
    assert len(scalars) == 1
    out = osp.join(root, 'loss.png')
    run([mmdet_tool('analysis_tools/analyze_logs.py'), 'plot_curve',
         scalars[0], '--keys', 'loss', '--out', out], cwd=root)
    assert osp.getsize(out) > 1000
    log = run([mmdet_tool('analysis_tools/analyze_logs.py'),
               'cal_train_time', scalars[0]], cwd=root)
    assert 'average iter time' in log, log[-2000:]
