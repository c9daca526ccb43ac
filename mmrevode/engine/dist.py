"""Distributed training and testing on machines without GPUs."""
import datetime

import torch
import torch.distributed as torch_dist
from mmengine.registry import MODEL_WRAPPERS
from torch.nn.parallel import DistributedDataParallel


def setup_distributed(cfg):
    """Make ``cfg`` runnable with ``launcher='pytorch'`` when CUDA is absent.

    MMEngine 0.10.7's ``init_dist`` for the pytorch launcher calls
    ``torch.cuda.set_device`` unconditionally, and ``Runner.wrap_model``
    gives DDP ``device_ids=[LOCAL_RANK]``, which DDP refuses for CPU
    modules. Without CUDA this function therefore

    - initialises the ``gloo`` process group from the environment that
      ``torchrun`` sets (``MASTER_ADDR``, ``MASTER_PORT``, ``RANK``,
      ``WORLD_SIZE``), before the Runner is built, so the Runner skips its
      own initialisation;
    - sets ``env_cfg.dist_cfg.backend='gloo'`` and, for a DDP model wrapper,
      ``model_wrapper_cfg.device_ids=None`` (kept if already set). Without a
      ``model_wrapper_cfg``, the one made is the Runner's default wrapper:
      ``broadcast_buffers=False`` and the config's top-level
      ``find_unused_parameters``.

    With CUDA, or another launcher, ``cfg`` is returned unchanged.

    Args:
        cfg (mmengine.Config): The run's config, with ``launcher`` set.

    Returns:
        mmengine.Config: The same ``cfg``.
    """
    if cfg.get('launcher', 'none') != 'pytorch' or torch.cuda.is_available():
        return cfg
    env_cfg = cfg.setdefault('env_cfg', dict())
    dist_cfg = env_cfg.setdefault('dist_cfg', dict())
    dist_cfg['backend'] = 'gloo'
    if not torch_dist.is_initialized():
        kwargs = {}
        if dist_cfg.get('timeout') is not None:
            kwargs['timeout'] = datetime.timedelta(
                seconds=dist_cfg['timeout'])
        torch_dist.init_process_group(backend='gloo', **kwargs)
    wrapper_cfg = cfg.get('model_wrapper_cfg')
    if not wrapper_cfg:
        # What the Runner builds without a model_wrapper_cfg, which reads
        # the top-level ``find_unused_parameters`` key.
        wrapper_cfg = dict(
            type='MMDistributedDataParallel',
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper_cfg.setdefault('type', 'MMDistributedDataParallel')
    wrapper_type = wrapper_cfg['type']
    if isinstance(wrapper_type, str):
        wrapper_type = MODEL_WRAPPERS.get(wrapper_type)
    if isinstance(wrapper_type, type) and issubclass(
            wrapper_type, DistributedDataParallel):
        wrapper_cfg.setdefault('device_ids', None)
    cfg.model_wrapper_cfg = wrapper_cfg
    return cfg
