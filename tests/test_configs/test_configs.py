"""Every config (except the detection ones) builds on generated data.

For each config: the model (and one loss evaluation on a batch of two
samples that went through the training pipeline), the train, val and test
data sets (on data written in the real formats), the optimizer wrapper with
its parameter groups, the parameter schedulers and the hooks.
"""
import glob
import os.path as osp
from copy import deepcopy

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import default_collate
from mmengine.optim import build_optim_wrapper
from mmengine.registry import HOOKS, PARAM_SCHEDULERS, init_default_scope
from mmpretrain.registry import DATASETS, MODELS, VISUALIZERS
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

import mmrevode  # noqa: F401
from mmrevode.datasets import write_cifar10, write_cifar100, write_stl10

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = sorted(
    config for config in (
        osp.relpath(path, REPO)
        for path in glob.glob(osp.join(REPO, 'configs', '**', '*.py'),
                              recursive=True))
    if not {'_base_', 'det'} & set(config.split(osp.sep)))
DEEP = ('1202', '218', '182', '164')


@pytest.fixture(scope='module', autouse=True)
def one_thread():
    """Tiny batches: one thread is faster, and robust on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='module')
def data_roots(tmp_path_factory):
    rng = np.random.default_rng(0)

    def images(n, size):
        return rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)

    roots = {}
    roots['data/cifar10'] = str(tmp_path_factory.mktemp('cifar10'))
    write_cifar10(roots['data/cifar10'], images(40, 32),
                  np.arange(40) % 10, images(10, 32), np.arange(10))
    roots['data/cifar100'] = str(tmp_path_factory.mktemp('cifar100'))
    write_cifar100(roots['data/cifar100'], images(200, 32),
                   np.arange(200) % 100, images(100, 32), np.arange(100))
    roots['data/stl10'] = str(tmp_path_factory.mktemp('stl10'))
    write_stl10(roots['data/stl10'], images(40, 96), np.arange(40) % 10,
                images(10, 96), np.arange(10))
    return roots


def _point_at(node, roots):
    """Replace the data roots, read CIFAR without its md5 check."""
    if isinstance(node, dict):
        if node.get('data_root') in roots:
            node['data_root'] = roots[node['data_root']]
            if str(node.get('type', '')).startswith('CheckedCIFAR'):
                node['verify_md5'] = False
        for value in node.values():
            _point_at(value, roots)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _point_at(value, roots)


def test_configs_found():
    names = {osp.basename(c) for c in CONFIGS}
    for scheme in ('hamiltonian', 'midpoint', 'leapfrog'):
        for data in ('cifar10', 'cifar100', 'stl10'):
            assert f'{scheme}_{data}.py' in names
    for data in ('cifar10', 'stl10'):
        for pct in (5, 10, 20, 40, 60, 80):
            assert f'hamiltonian_{data}_{pct}pct.py' in names


@pytest.mark.parametrize('config', CONFIGS)
def test_config_builds(config, data_roots):
    cfg = Config.fromfile(osp.join(REPO, config))
    assert cfg.custom_imports.imports == ['mmrevode']
    init_default_scope(cfg.default_scope)
    _point_at(cfg._cfg_dict, data_roots)

    # data sets; the fewer-data configs keep their fraction of every class
    datasets = {}
    for split in ('train', 'val', 'test'):
        loader = cfg.get(f'{split}_dataloader')
        datasets[split] = DATASETS.build(deepcopy(loader.dataset))
        assert len(datasets[split]) > 0
    fraction = cfg.train_dataloader.dataset.get('fraction')
    if fraction is not None:
        inner = len(datasets['train'].dataset)
        assert len(datasets['train']) == 10 * max(
            1, int(fraction * inner / 10 + 0.5))

    # the model, and one loss on two training samples
    model_cfg = deepcopy(cfg.model)
    model_cfg.setdefault('data_preprocessor', cfg.get('data_preprocessor'))
    model = MODELS.build(model_cfg)
    model.init_weights()
    if not any(depth in config for depth in DEEP):
        batch = default_collate([datasets['train'][i] for i in range(2)])
        data = model.data_preprocessor(batch, training=True)
        losses = model(**data, mode='loss')
        assert torch.isfinite(losses['loss'])

    # the optimizer: weight decay on convolution and linear weights only
    optim_wrapper = build_optim_wrapper(model, deepcopy(cfg.optim_wrapper))
    decay = cfg.optim_wrapper.optimizer.weight_decay
    group_of = {
        id(p): g
        for g in optim_wrapper.optimizer.param_groups for p in g['params']
    }
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            expected = decay if (name == 'weight' and isinstance(
                module, (nn.Conv2d, nn.Linear))) else 0
            if isinstance(module, _BatchNorm) or name == 'bias':
                expected = 0
            assert group_of[id(param)]['weight_decay'] == expected, (
                type(module).__name__, name)
    assert len(group_of) == len(list(model.parameters()))

    schedulers = cfg.param_scheduler
    for scheduler in schedulers if isinstance(schedulers, list) \
            else [schedulers]:
        PARAM_SCHEDULERS.build(
            dict(scheduler, optimizer=optim_wrapper.optimizer))
    VISUALIZERS.build(dict(cfg.visualizer, name=f'visualizer_{config}'))
    for hook in list(cfg.default_hooks.values()) + list(cfg.custom_hooks):
        HOOKS.build(deepcopy(hook))
