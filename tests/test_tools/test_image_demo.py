"""demo/image_demo.py classifies an image with a checkpoint of train.py."""
import os
import os.path as osp
import re
import subprocess
import sys

import mmcv
import numpy as np
import pytest
import torch
from tool_utils import REPO, run_main

from mmrevode.datasets.cifar import CheckedCIFAR10


def run_demo(*args):
    env = dict(os.environ, OMP_NUM_THREADS='1')
    env['PYTHONPATH'] = os.pathsep.join(
        [REPO] + [p for p in [env.get('PYTHONPATH')] if p])
    return subprocess.run(
        [sys.executable, osp.join(REPO, 'demo', 'image_demo.py')] +
        [str(a) for a in args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300)


@pytest.fixture
def image_file(tmp_path):
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    path = tmp_path / 'dog.png'
    mmcv.imwrite(image[..., ::-1], str(path))  # written as BGR, read as RGB
    return path, image


@pytest.mark.slow
def test_demo_prints_topk_and_draws_the_prediction(tiny_cifar_run,
                                                   image_file, tmp_path,
                                                   capsys):
    config, checkpoint = tiny_cifar_run
    path, image = image_file
    assert run_main('demo/image_demo.py', path, config, '--checkpoint',
                    checkpoint, '--topk', 3, '--show-dir',
                    tmp_path / 'shown') == 0
    stdout = capsys.readouterr().out
    lines = re.findall(r'^\s+(\d)\. (\w+) \(class (\d+)\): ([\d.]+)$',
                       stdout, re.M)
    assert [int(rank) for rank, *_ in lines] == [1, 2, 3], stdout
    classes = CheckedCIFAR10.METAINFO['classes']
    for _, name, label, _ in lines:
        assert name == classes[int(label)]
    scores = [float(score) for *_, score in lines]
    assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1

    # the same scores as the model on the RGB array, in PyTorch directly
    from mmpretrain.apis import get_model
    model = get_model(str(config), pretrained=str(checkpoint))
    with torch.no_grad():
        data = model.data_preprocessor(
            dict(inputs=[torch.from_numpy(image).permute(2, 0, 1)]), False)
        probs = model(data['inputs'], mode='predict')[0].pred_score
    top = torch.topk(probs, 3)
    assert [int(label) for _, _, label, _ in lines] == top.indices.tolist()
    np.testing.assert_allclose(scores, top.values.numpy(), atol=1e-4)

    drawn = mmcv.imread(str(tmp_path / 'shown' / 'dog.png'))
    assert drawn is not None and drawn.shape[0] >= 32


def test_missing_image_is_one_clear_message(tmp_path):
    """In a process of its own: the exit status and no traceback."""
    result = run_demo(tmp_path / 'none.png',
                      osp.join(REPO, 'configs', 'revode',
                               'hamiltonian_digits.py'), '--random-weights')
    assert result.returncode == 1
    assert 'Error: the image' in result.stderr
    assert 'Traceback' not in result.stderr
