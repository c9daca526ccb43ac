"""Helpers of the distributed tests: a 2-process launcher on CPU (gloo over
loopback), a CPU stand-in for ``SyncBatchNorm`` and tiny models.

The workers are module-level functions of the test modules; they run in
fresh processes started with the ``spawn`` method, which import the test
module again (``sys.path`` is passed on, so the import works under pytest).
"""
import os
import tempfile
import traceback
from datetime import timedelta
from typing import Callable, List

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

#: Seconds a collective may wait for its peers before gloo raises. A rank
#: that skips (or adds) a collective, e.g. in the backward recompute, makes
#: its peer fail after this long instead of hanging the test run.
COLLECTIVE_TIMEOUT_S = 60
#: Seconds a whole distributed test may take before its processes are killed.
JOIN_TIMEOUT_S = 240


def run_distributed(worker: Callable, world_size: int = 2,
                    timeout: float = JOIN_TIMEOUT_S, backend: str = 'gloo',
                    **kwargs) -> List:
    """Run ``worker(rank, world_size, **kwargs)`` in ``world_size`` processes.

    Each process joins a process group (gloo by default) over 127.0.0.1
    (file rendezvous, so no port has to be picked) with one intra-op thread. Returns the
    workers' return values, by rank. Raises if a worker fails or the run
    outlives ``timeout`` seconds (the processes are then killed).
    """
    ctx = mp.get_context('spawn')
    with tempfile.TemporaryDirectory() as tmp:
        init_file = os.path.join(tmp, 'rendezvous')
        procs = []
        for rank in range(world_size):
            proc = ctx.Process(
                target=_entry,
                args=(worker, backend, rank, world_size, init_file,
                      os.path.join(tmp, f'rank{rank}.pth'), kwargs),
                daemon=True)
            proc.start()
            procs.append(proc)
        deadline = _now() + timeout
        for proc in procs:
            proc.join(max(0.0, deadline - _now()))
        hung = [rank for rank, p in enumerate(procs) if p.is_alive()]
        for rank in hung:
            procs[rank].kill()
            procs[rank].join()
        errors = []
        for rank in range(world_size):
            error_file = os.path.join(tmp, f'rank{rank}.err')
            if os.path.exists(error_file):
                with open(error_file) as f:
                    errors.append(f'rank {rank}:\n{f.read()}')
        if hung or errors or any(p.exitcode != 0 for p in procs):
            raise RuntimeError(
                f'distributed run failed (ranks {hung} still running after '
                f'{timeout} s, exit codes {[p.exitcode for p in procs]})\n' +
                '\n'.join(errors))
        return [
            torch.load(
                os.path.join(tmp, f'rank{rank}.pth'), weights_only=False)
            for rank in range(world_size)
        ]


def _now() -> float:
    import time
    return time.monotonic()


def _entry(worker, backend, rank, world_size, init_file, result_file,
           kwargs):
    os.environ['GLOO_SOCKET_IFNAME'] = 'lo'
    os.environ['MASTER_ADDR'] = '127.0.0.1'
    torch.set_num_threads(1)
    try:
        dist.init_process_group(
            backend,
            init_method=f'file://{init_file}',
            rank=rank,
            world_size=world_size,
            timeout=timedelta(seconds=COLLECTIVE_TIMEOUT_S))
        result = worker(rank, world_size, **kwargs)
        torch.save(result, result_file)
        dist.barrier()
    except BaseException:
        with open(result_file[:-4] + '.err', 'w') as f:
            f.write(traceback.format_exc())
        raise
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


class AllReduceSum(torch.autograd.Function):
    """Differentiable all-reduce (sum): the gradient of every rank's copy of
    the sum is all-reduced back to each input, like
    ``torch.distributed.nn.functional.all_reduce`` (deprecated in torch 2.x).
    """

    @staticmethod
    def forward(ctx, tensor: Tensor) -> Tensor:
        total = tensor.clone()
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class GlooSyncBatchNorm(_BatchNorm):
    """Synchronised batch norm that runs on CPU tensors (any backend).

    ``torch.nn.SyncBatchNorm`` refuses CPU tensors, so the CPU tests use this
    stand-in with the same contract as far as the reversible engine is
    concerned: in training mode (or without running stats) it normalises
    with the statistics of the global batch, all-reduced with the
    differentiable :class:`AllReduceSum` (so the backward all-reduces too),
    and it updates the running statistics only when
    ``self.training and self.track_running_stats``, as torch's does.
    ``sync_calls`` counts the forward collectives of this module.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.sync_calls = 0

    def _check_input_dim(self, input: Tensor):
        if input.dim() != 4:
            raise ValueError(f'expected 4D input (got {input.dim()}D input)')

    def forward(self, x: Tensor) -> Tensor:
        self._check_input_dim(x)
        if not self.training and self.track_running_stats:
            return F.batch_norm(x, self.running_mean, self.running_var,
                                self.weight, self.bias, False, 0.0, self.eps)
        channels = x.shape[1]
        count = x.new_full((1, ), x.numel() // channels)
        local = torch.cat([x.sum((0, 2, 3)), (x * x).sum((0, 2, 3)), count])
        total = AllReduceSum.apply(local)
        self.sync_calls += 1
        n = total[-1]
        mean = total[:channels] / n
        var = total[channels:2 * channels] / n - mean * mean
        if self.training and self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = self.momentum if self.momentum is not None \
                    else 1.0 / self.num_batches_tracked.item()
                self.running_mean.mul_(1 - momentum).add_(
                    mean.detach(), alpha=momentum)
                self.running_var.mul_(1 - momentum).add_(
                    var.detach() * n / (n - 1), alpha=momentum)
        shape = (1, channels, 1, 1)
        y = (x - mean.view(shape)) * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y


def convert_to_gloo_sync_bn(module: nn.Module) -> nn.Module:
    """Replace every ``BatchNorm2d`` of ``module`` by a
    :class:`GlooSyncBatchNorm` with the same parameters and buffers (as
    ``nn.SyncBatchNorm.convert_sync_batchnorm`` does)."""
    if isinstance(module, nn.BatchNorm2d):
        new = GlooSyncBatchNorm(module.num_features, module.eps,
                                module.momentum, module.affine,
                                module.track_running_stats)
        new = new.to(device=module.running_mean.device,
                     dtype=module.running_mean.dtype)
        new.load_state_dict(module.state_dict())
        new.train(module.training)
        return new
    for name, child in module.named_children():
        module.add_module(name, convert_to_gloo_sync_bn(child))
    return module


def tiny_classifier(num_classes: int = 4, **backbone_kwargs):
    """An MMPretrain ``ImageClassifier`` with a tiny Hamiltonian backbone
    (three units of one block, widths 8-16-32) on 16x16 images."""
    import mmrevode  # noqa: F401  (registers the backbones)
    from mmpretrain.registry import MODELS
    backbone = dict(
        type='HamiltonianNet',
        arch=dict(blocks=[1, 1, 1], widths=[8, 16, 32]))
    backbone.update(backbone_kwargs)
    out_indices = backbone.get('out_indices', -1)
    last = out_indices if isinstance(out_indices, int) else out_indices[-1]
    in_channels = backbone['arch']['widths'][last]
    return MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=backbone,
            neck=dict(type='GlobalAveragePooling'),
            head=dict(
                type='LinearClsHead',
                num_classes=num_classes,
                in_channels=in_channels,
                loss=dict(type='CrossEntropyLoss')),
            data_preprocessor=dict(type='ClsDataPreprocessor')))


def classification_batches(num_steps: int, batch_size: int,
                           num_classes: int = 4, size: int = 16,
                           seed: int = 0) -> List[dict]:
    """Deterministic batches in the format the data loader gives MMPretrain
    models: ``dict(inputs=[CHW uint8 tensors], data_samples=[...])``."""
    from mmpretrain.structures import DataSample
    gen = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(num_steps):
        images = torch.randint(
            0, 256, (batch_size, 3, size, size),
            generator=gen,
            dtype=torch.uint8)
        labels = torch.randint(0, num_classes, (batch_size, ), generator=gen)
        batches.append(
            dict(
                inputs=list(images),
                data_samples=[
                    DataSample().set_gt_label(int(y)) for y in labels
                ]))
    return batches


def shard(batch: dict, rank: int, world_size: int) -> dict:
    """The ``rank``-th of ``world_size`` contiguous slices of a batch."""
    n = len(batch['inputs']) // world_size
    return {
        key: value[rank * n:(rank + 1) * n]
        for key, value in batch.items()
    }


def relative_error(a: Tensor, b: Tensor) -> float:
    a, b = a.double(), b.double()
    return ((a - b).norm() / b.norm().clamp_min(1e-300)).item()
