"""Synchronised batch norm inside reversible units, 2 processes.

Each rank gets half of a global batch; with synchronised BN the DDP run must
equal one process on the whole batch with plain BN: outputs, gradients
(after DDP's averaging) and running statistics, which must be updated once
per forward although the reversible backward runs the norms a second time.
That recompute issues the same collectives on both ranks (a rank that
skipped one would leave its peer waiting until the gloo timeout, and the
launcher reports it).

On CPU, ``torch.nn.SyncBatchNorm`` refuses to run ("SyncBatchNorm expected
input tensor to be on GPU"), so the CPU test uses :class:`GlooSyncBatchNorm`,
a ``_BatchNorm`` with the same contract. The real ``SyncBN`` of
``norm_cfg=dict(type='SyncBN')`` is tested by the CUDA-only test at the end.
"""
import pytest
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from dist_utils import (GlooSyncBatchNorm, convert_to_gloo_sync_bn,
                        relative_error, run_distributed)

GLOBAL_BATCH = 8
ARCH = dict(blocks=[2, 1], widths=[8, 16])


def build_backbone(reversible, norm_cfg=dict(type='BN'), dtype=torch.float64,
                   exact=False):
    import mmrevode  # noqa: F401
    from mmrevode.models import HamiltonianNet
    torch.manual_seed(0)
    model = HamiltonianNet(
        arch=ARCH,
        h=0.5,
        mode='reversible' if reversible else 'plain',
        norm_cfg=norm_cfg,
        exact=exact)
    # Non-trivial affine parameters, so that their gradients are tested too.
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.5, 0.5)
    return model.to(dtype).train()


def global_data(dtype=torch.float64, device='cpu'):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(GLOBAL_BATCH, 3, 8, 8, generator=gen, dtype=dtype)
    weight = torch.randn(GLOBAL_BATCH, 16, 4, 4, generator=gen, dtype=dtype)
    return x.to(device), weight.to(device)


def loss_fn(out, weight, global_batch=GLOBAL_BATCH):
    """Mean over the global batch once DDP averages the ranks' gradients."""
    world_size = global_batch // len(out)
    return (out * weight).sum() * (world_size / global_batch)


def norm_layers(model):
    return [(n, m) for n, m in model.named_modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def one_step(model, x, weight):
    """Forward and backward on (a shard of) the batch; what the test needs."""
    model.zero_grad(set_to_none=True)
    out = model(x)[0]
    loss_fn(out, weight).backward()
    module = getattr(model, 'module', model)
    return dict(
        out=out.detach().cpu(),
        grads={n: p.grad.detach().cpu()
               for n, p in module.named_parameters()},
        buffers={n: b.detach().cpu()
                 for n, b in module.named_buffers()})


def sync_bn_worker(rank, world_size):
    # torch's SyncBatchNorm: what it says about CPU tensors.
    try:
        nn.SyncBatchNorm(4).train()(torch.randn(2, 4, 3, 3))
        torch_sync_bn_error = None
    except ValueError as error:
        torch_sync_bn_error = str(error)
    x, weight = global_data()
    n = GLOBAL_BATCH // world_size
    part = slice(rank * n, (rank + 1) * n)
    results = dict(torch_sync_bn_error=torch_sync_bn_error)
    from mmrevode.models.reversible import RebuildProbe
    for reversible in (True, False, 'exact'):
        model = convert_to_gloo_sync_bn(
            build_backbone(bool(reversible), exact=reversible == 'exact'))
        ddp = DistributedDataParallel(model, device_ids=None)
        norms = [m for _, m in norm_layers(model)]
        assert norms and all(isinstance(m, GlooSyncBatchNorm) for m in norms)
        probes = [RebuildProbe(every_step=True) for _ in model.units]
        for unit, probe in zip(model.units, probes):
            unit.probe_rebuild(probe)
        out = ddp(x[part])[0]
        forward_calls = [m.sync_calls for m in norms]
        loss_fn(out, weight[part]).backward()
        backward_calls = [
            m.sync_calls - c for m, c in zip(norms, forward_calls)
        ]
        results[reversible] = dict(
            out=out.detach(),
            grads={n: p.grad.clone()
                   for n, p in model.named_parameters()},
            buffers={n: b.clone()
                     for n, b in model.named_buffers()},
            forward_calls=forward_calls,
            backward_calls=backward_calls,
            rebuilt_equal=[r.equal for p in probes for r in p.records],
            norm_names=[n for n, _ in norm_layers(model)])
    return results


@pytest.fixture(scope='module')
def sync_bn_results():
    return run_distributed(sync_bn_worker)


@pytest.fixture(scope='module')
def single_process_reference():
    x, weight = global_data()
    return one_step(build_backbone(reversible=False), x, weight)


@pytest.mark.parametrize('reversible', [True, False])
def test_synchronised_bn_equals_one_process_on_the_whole_batch(
        sync_bn_results, single_process_reference, reversible):
    ref = single_process_reference
    results = [r[reversible] for r in sync_bn_results]

    out = torch.cat([r['out'] for r in results])
    assert relative_error(out, ref['out']) < 1e-12
    for r in results:
        for name, grad in ref['grads'].items():
            assert relative_error(r['grads'][name], grad) < 1e-10, name
        for name, buf in ref['buffers'].items():
            if name.endswith('num_batches_tracked'):
                # Updated once, in the forward, not again in the recompute.
                assert r['buffers'][name].item() == buf.item() == 1, name
            else:
                assert relative_error(r['buffers'][name], buf) < 1e-12, name


@pytest.mark.parametrize('reversible', [True, False])
def test_recompute_issues_the_same_collectives_on_every_rank(
        sync_bn_results, reversible):
    """Every norm synchronises once in the forward; in the reversible
    backward those inside the units synchronise again (the recompute), as
    many times on both ranks."""
    results = [r[reversible] for r in sync_bn_results]
    names = results[0]['norm_names']
    in_units = [name.startswith('units.') for name in names]
    assert any(in_units) and not all(in_units)
    for r in results:
        assert r['forward_calls'] == [1] * len(names)
        assert r['backward_calls'] == [int(reversible and u) for u in in_units]


def test_torch_sync_batchnorm_refuses_cpu_tensors(sync_bn_results):
    """Why the CPU tests need :class:`GlooSyncBatchNorm`."""
    for r in sync_bn_results:
        assert 'expected input tensor to be on GPU' in r['torch_sync_bn_error']


# -- CUDA: torch's own SyncBatchNorm, built from norm_cfg=dict(type='SyncBN')


def cuda_sync_bn_worker(rank, world_size, reversible):
    # Gloo runs the collectives of CUDA tensors too (through host copies),
    # so two ranks can share a single GPU; with more, each takes its own.
    device = torch.device('cuda', rank % torch.cuda.device_count())
    torch.cuda.set_device(device)
    model = build_backbone(reversible, norm_cfg=dict(type='SyncBN'))
    model = model.to(device)
    norms = norm_layers(model)
    assert norms and all(isinstance(m, nn.SyncBatchNorm) for _, m in norms)
    ddp = DistributedDataParallel(model, device_ids=[device])
    x, weight = global_data(device=device)
    n = GLOBAL_BATCH // world_size
    part = slice(rank * n, (rank + 1) * n)
    result = one_step(ddp, x[part], weight[part])
    torch.cuda.synchronize()
    return result


@pytest.mark.skipif(
    not torch.cuda.is_available(), reason='torch SyncBatchNorm needs CUDA')
@pytest.mark.parametrize('reversible', [True, False])
def test_torch_sync_bn_on_cuda_equals_one_process_on_the_whole_batch(
        reversible):
    x, weight = global_data(device='cuda')
    ref = one_step(build_backbone(False).cuda(), x, weight)
    results = run_distributed(
        cuda_sync_bn_worker,
        backend='nccl' if torch.cuda.device_count() >= 2 else 'gloo',
        reversible=reversible)
    out = torch.cat([r['out'] for r in results])
    assert relative_error(out, ref['out']) < 1e-10
    for r in results:
        for name, grad in ref['grads'].items():
            assert relative_error(r['grads'][name], grad) < 1e-8, name
        for name, buf in ref['buffers'].items():
            if name.endswith('num_batches_tracked'):
                assert r['buffers'][name].item() == buf.item() == 1, name
            else:
                assert relative_error(r['buffers'][name], buf) < 1e-10, name


def test_exact_mode_rebuilds_bit_for_bit_with_synchronised_bn(
        sync_bn_results):
    """The recompute's collectives give the forward's statistics again, so
    exact units rebuild every pair exactly on every rank, and match one
    process on the whole batch up to the grid's rounding."""
    x, weight = global_data()
    ref = one_step(build_backbone(reversible=False, exact=True), x, weight)
    results = [r['exact'] for r in sync_bn_results]
    assert relative_error(torch.cat([r['out'] for r in results]),
                          ref['out']) < 1e-8
    for r in results:
        assert r['rebuilt_equal'] and all(r['rebuilt_equal'])
        assert r['backward_calls'] == results[0]['backward_calls']
        for name, grad in ref['grads'].items():
            assert relative_error(r['grads'][name], grad) < 1e-6, name
    # in floating point the rebuilt pairs are close, not equal
    assert not all(sync_bn_results[0][True]['rebuilt_equal'])
