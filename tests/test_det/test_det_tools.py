"""tools/det/train.py and tools/det/test.py end to end: a detector from the
configs, its backbone loaded from a classification checkpoint, trained for
two iterations by MMDetection's runner on a generated COCO-format data set,
evaluated with CocoMetric, then tested from the saved checkpoint."""
import glob
import json
import os
import os.path as osp
import subprocess
import sys

import pytest

pytest.importorskip('mmdet')

from det_utils import (  # noqa: E402
    DET_CONFIGS, REPO, config_path, mmdet_tool, run, write_config)

pytestmark = pytest.mark.slow

TRAIN = osp.join(REPO, 'tools', 'det', 'train.py')
TEST = osp.join(REPO, 'tools', 'det', 'test.py')


def bbox_metrics(log):
    """The CocoMetric results printed by the runner's logger."""
    lines = [line for line in log.splitlines() if 'coco/bbox_mAP:' in line]
    assert lines, log[-6000:]
    return lines[-1]


@pytest.mark.parametrize('name', DET_CONFIGS)
def test_train_two_iterations_then_test(name, tmp_path, coco_root,
                                        cls_checkpoint):
    checkpoint, _ = cls_checkpoint
    cfg = write_config(
        str(tmp_path / f'tiny_{name}'), config_path(name), coco_root,
        checkpoint)
    work_dir = str(tmp_path / 'work_dir')

    log = run([TRAIN, cfg, '--work-dir', work_dir], cwd=str(tmp_path))
    assert f'Loads checkpoint by local backend from path: {checkpoint}' \
        in log
    assert 'Iter(train) [2/2]' in log
    bbox_metrics(log)
    trained = osp.join(work_dir, 'iter_2.pth')
    assert osp.isfile(trained)

    log = run([TEST, cfg, trained, '--work-dir', work_dir,
               '--out', str(tmp_path / 'results.pkl')], cwd=str(tmp_path))
    metrics = bbox_metrics(log)
    assert 'coco/bbox_mAP_50:' in metrics
    assert osp.isfile(tmp_path / 'results.pkl')
    # The runner's scalar log of the test run.
    logs = glob.glob(osp.join(work_dir, '*', '*.json'))
    assert any('coco/bbox_mAP' in json.load(open(p)) for p in logs)


def test_mmdetection_tools_train_resume_and_test(tmp_path, coco_root,
                                                 cls_checkpoint):
    """MMDetection's own tools with our config: the backbone's Pretrained
    checkpoint (made as tools/train.py makes them: optimizer and message
    hub) loads; training, resuming and testing work."""
    checkpoint, _ = cls_checkpoint
    name = DET_CONFIGS[0]
    cfg = write_config(
        str(tmp_path / f'tiny_{name}'), config_path(name), coco_root,
        checkpoint)
    work_dir = str(tmp_path / 'work_dir')
    train, test = mmdet_tool('train.py'), mmdet_tool('test.py')
    log = run([train, cfg, '--work-dir', work_dir, '--cfg-options',
               'train_cfg.max_iters=1'], cwd=str(tmp_path))
    assert f'Loads checkpoint by local backend from path: {checkpoint}' \
        in log
    assert osp.isfile(osp.join(work_dir, 'iter_1.pth'))
    log = run([train, cfg, '--work-dir', work_dir, '--resume'],
              cwd=str(tmp_path))
    assert 'resumed epoch: 0, iter: 1' in log
    trained = osp.join(work_dir, 'iter_2.pth')
    log = run([test, cfg, trained, '--work-dir', work_dir],
              cwd=str(tmp_path))
    assert 'coco/bbox_mAP_50:' in bbox_metrics(log)


def test_crafted_pretrained_checkpoint_runs_no_code(tmp_path, coco_root):
    """A Pretrained checkpoint that would create a file when unpickled,
    through our tools/det/train.py and MMDetection's own."""
    import torch

    class WritesFile:

        def __reduce__(self):
            return (open, (str(tmp_path / 'marker'), 'w'))

    crafted = str(tmp_path / 'crafted.pth')
    torch.save(dict(state_dict={}, meta=dict(note=WritesFile())), crafted)
    name = DET_CONFIGS[0]
    cfg = write_config(
        str(tmp_path / f'tiny_{name}'), config_path(name), coco_root,
        crafted)
    env = dict(os.environ, PYTHONPATH=REPO)
    for tool in (TRAIN, mmdet_tool('train.py')):
        proc = subprocess.run(
            [sys.executable, tool, cfg, '--work-dir',
             str(tmp_path / osp.basename(osp.dirname(tool)))],
            cwd=str(tmp_path), env=env, capture_output=True, text=True,
            timeout=900)
        assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert 'io.open' in proc.stderr
        assert not (tmp_path / 'marker').exists()
        if tool == TRAIN:  # ours: one message, no traceback
            assert 'Traceback' not in proc.stderr
