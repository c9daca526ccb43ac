"""setup_distributed: CPU DDP settings for the pytorch launcher."""
import socket

import pytest
import torch
import torch.distributed as dist
from mmengine.config import Config

from mmrevode.engine import setup_distributed


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_nothing_to_do_without_launcher():
    cfg = Config(dict(launcher='none', env_cfg=dict(dist_cfg=dict(
        backend='nccl'))))
    setup_distributed(cfg)
    assert 'model_wrapper_cfg' not in cfg
    assert cfg.env_cfg.dist_cfg.backend == 'nccl'


@pytest.mark.parametrize('wrapper', [None, dict(find_unused_parameters=True)])
def test_cpu_pytorch_launcher(monkeypatch, wrapper):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    for key, value in dict(
            MASTER_ADDR='127.0.0.1',
            MASTER_PORT=str(_free_port()),
            RANK='0',
            WORLD_SIZE='1',
            LOCAL_RANK='0').items():
        monkeypatch.setenv(key, value)
    cfg = Config(
        dict(
            launcher='pytorch',
            env_cfg=dict(dist_cfg=dict(backend='nccl', timeout=60)),
            model_wrapper_cfg=wrapper))
    try:
        setup_distributed(cfg)
        assert dist.is_initialized()
        assert dist.get_backend() == 'gloo'
        assert cfg.env_cfg.dist_cfg.backend == 'gloo'
        assert cfg.model_wrapper_cfg['type'] == 'MMDistributedDataParallel'
        assert cfg.model_wrapper_cfg['device_ids'] is None
        if wrapper:
            assert cfg.model_wrapper_cfg['find_unused_parameters'] is True
        # a second call (e.g. by a tool after a user's script) is harmless
        setup_distributed(cfg)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


@pytest.mark.parametrize('find_unused', [False, True])
def test_cpu_wrapper_is_the_runners_default_one(monkeypatch, find_unused):
    """Without model_wrapper_cfg, the Runner's DDP reads the top-level
    ``find_unused_parameters`` and does not broadcast buffers; the CPU
    wrapper made in its place must do the same."""
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    for key, value in dict(
            MASTER_ADDR='127.0.0.1',
            MASTER_PORT=str(_free_port()),
            RANK='0',
            WORLD_SIZE='1',
            LOCAL_RANK='0').items():
        monkeypatch.setenv(key, value)
    cfg = Config(
        dict(
            launcher='pytorch',
            env_cfg=dict(dist_cfg=dict(backend='nccl', timeout=60)),
            find_unused_parameters=find_unused))
    try:
        setup_distributed(cfg)
        assert cfg.model_wrapper_cfg == dict(
            type='MMDistributedDataParallel',
            broadcast_buffers=False,
            find_unused_parameters=find_unused,
            device_ids=None)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
