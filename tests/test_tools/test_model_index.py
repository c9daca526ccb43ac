"""mmrevode's models in MMPretrain's model index (configs/revode/metafiles):
``list_models``, ``get_model``, ``inference_model`` and the inferencer."""
import os.path as osp

import mmcv
import numpy as np
import pytest
import yaml
from tool_utils import REPO, run_main

import mmrevode  # noqa: F401  (registers the model index)
from mmrevode.utils.model_index import find_model_index, register_model_index

mmpretrain = pytest.importorskip('mmpretrain')

FAMILIES = {
    'hamiltonian': 'HamiltonianNet',
    'midpoint': 'MidpointNet',
    'leapfrog': 'LeapfrogNet',
    'revnet': 'RevNet',
    'resnet': 'CifarResNet',
}


def metafile_models(family):
    path = osp.join(REPO, 'configs', 'revode', 'metafiles', f'{family}.yml')
    with open(path) as f:
        return yaml.safe_load(f)['Models']


def test_the_index_is_found_and_registered_once():
    assert find_model_index() == osp.join(REPO, 'model-index.yml')
    # already registered by `import mmrevode`
    assert register_model_index() is False


def test_list_models_lists_every_family():
    from mmpretrain import list_models
    names = list_models('*hamiltonian*')
    assert 'hamiltonian74_1xb100_cifar10' in names
    assert 'hamiltonian14_1xb50_digits' in names
    for family in FAMILIES:
        listed = [m['Name'] for m in metafile_models(family)]
        assert listed and set(listed) <= set(list_models()), family
        for model in metafile_models(family):
            # configs keep their file names
            assert osp.isfile(osp.join(REPO, model['Config'])), model
            # no published checkpoint, so no figures claimed: the results
            # name only the task, which the inferencers need
            assert 'Weights' not in model
            assert model['Results'] == [dict(
                Dataset=model['Metadata']['Training Data'],
                Task='Image Classification', Metrics={})]
    assert 'midpoint8_1xb50_digits' in list_models(
        '*digits', task='Image Classification')


@pytest.mark.parametrize('family', sorted(FAMILIES))
def test_get_model_builds_each_family(family):
    from mmpretrain import get_model
    model = metafile_models(family)[0]
    built = get_model(model['Name'])
    assert type(built.backbone).__name__ == FAMILIES[family]
    assert built._config.filename == osp.join(REPO, model['Config'])
    # the metafile's parameter count is the model's (3 significant figures)
    params = sum(p.numel() for p in built.parameters())
    expected = model['Metadata']['Parameters']
    assert abs(params - expected) <= 0.005 * expected, (params, expected)


@pytest.mark.slow
def test_inference_model_gives_the_prediction_of_test_py(digits_run, tmp_path,
                                                         capsys):
    from mmengine.fileio import load
    from mmpretrain import ImageClassificationInferencer, inference_model

    from mmrevode.datasets import Digits
    config, checkpoint, _ = digits_run
    predictions = tmp_path / 'predictions.pkl'
    assert run_main('test.py', config, checkpoint, '--work-dir',
                    tmp_path / 'test', '--out', predictions) == 0, \
        capsys.readouterr().err
    predicted = load(str(predictions))
    expected = [int(p['pred_label'][0]) for p in predicted]

    test_set = Digits(split='test', pipeline=[])
    name = 'hamiltonian14_1xb50_digits'
    inferencer = ImageClassificationInferencer(name, pretrained=str(checkpoint))
    for index in range(8):
        image = str(tmp_path / f'digit{index}.png')
        img = test_set[index]['img']
        assert img.dtype == np.uint8
        mmcv.imwrite(img, image)  # lossless: the pixels test.py saw
        got = inference_model(name, image, pretrained=str(checkpoint))
        assert got['pred_label'] == expected[index], index
        assert got['pred_score'] == pytest.approx(
            float(predicted[index]['pred_score'].max()), abs=1e-5)
        assert inferencer(image)[0]['pred_label'] == expected[index]
