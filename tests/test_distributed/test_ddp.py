"""The reversible backward under DistributedDataParallel, 2 CPU processes.

MMEngine's ``MMDistributedDataParallel`` (``device_ids=None``, gloo) trains a
tiny ``ImageClassifier`` with a Hamiltonian backbone for a few SGD steps, each
rank on its half of every global batch, as the Runner does. All scenarios run
in one launch of two processes; the tests below check its results.
"""
import pytest
import torch

from dist_utils import (classification_batches, relative_error,
                        run_distributed, shard, tiny_classifier)

NUM_STEPS = 3
BATCH_SIZE = 8  # global; 4 per rank
LR = 0.1
GN = dict(type='GN', num_groups=2)

SCENARIOS = {
    'rev': dict(mode='reversible'),
    'rev_find_unused': dict(mode='reversible', find_unused_parameters=True),
    'rev_frozen': dict(mode='reversible', frozen_stages=1),
    'rev_frozen_find_unused':
    dict(mode='reversible', frozen_stages=1, find_unused_parameters=True),
    # The last unit runs but its output is not used: its parameters get no
    # gradient, which DDP only accepts with find_unused_parameters=True.
    'rev_unused_unit':
    dict(mode='reversible', out_indices=(1, ), find_unused_parameters=True),
    'plain': dict(mode='plain'),
    'plain_frozen': dict(mode='plain', frozen_stages=1),
    'plain_unused_unit':
    dict(mode='plain', out_indices=(1, ), find_unused_parameters=True),
    # Gradient accumulation under DDP (no_sync on the first micro-batch).
    'rev_accumulate': dict(mode='reversible', norm_cfg=GN,
                           accumulative_counts=2),
    # Exact mode (fixed-point pairs).
    'rev_exact': dict(mode='reversible', exact=True),
    'plain_exact': dict(mode='plain', exact=True),
}
REVERSIBLE_VS_PLAIN = [('rev', 'plain'), ('rev_frozen', 'plain_frozen'),
                       ('rev_unused_unit', 'plain_unused_unit'),
                       ('rev_exact', 'plain_exact')]


def split_options(cfg):
    cfg = dict(cfg)
    find_unused = cfg.pop('find_unused_parameters', False)
    accumulative_counts = cfg.pop('accumulative_counts', 1)
    return cfg, find_unused, accumulative_counts


def build(cfg):
    torch.manual_seed(0)
    return tiny_classifier(**cfg)


def snapshot(model):
    return dict(
        params={n: p.detach().clone()
                for n, p in model.named_parameters()},
        buffers={n: b.clone()
                 for n, b in model.named_buffers()})


def ddp_worker(rank, world_size, scenarios):
    from mmengine.model import MMDistributedDataParallel
    from mmengine.optim import OptimWrapper
    batches = classification_batches(NUM_STEPS, BATCH_SIZE)
    results = {}
    for name, cfg in scenarios.items():
        cfg, find_unused, accumulative_counts = split_options(cfg)
        model = build(cfg)
        ddp = MMDistributedDataParallel(
            model, device_ids=None, find_unused_parameters=find_unused)
        optim_wrapper = OptimWrapper(
            torch.optim.SGD(ddp.parameters(), lr=LR, momentum=0.9),
            accumulative_counts=accumulative_counts)
        ddp.train()
        for batch in batches:
            local = shard(batch, rank, world_size)
            for i in range(accumulative_counts):
                ddp.train_step(
                    shard(local, i, accumulative_counts), optim_wrapper)
        results[name] = snapshot(model)
    return results


def reference_run(cfg, world_size=2):
    """One process: per step, the gradients of the ranks' half batches are
    averaged before the SGD step, which is what DDP computes."""
    cfg, _, accumulative_counts = split_options(cfg)
    model = build(cfg)
    init = snapshot(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9)
    model.train()
    # With accumulation (GroupNorm, no batch statistics) the reference is
    # one step on the whole global batch.
    parts = 1 if accumulative_counts > 1 else world_size
    for batch in classification_batches(NUM_STEPS, BATCH_SIZE):
        optimizer.zero_grad()
        for rank in range(parts):
            data = model.data_preprocessor(
                shard(batch, rank, parts), training=True)
            loss, _ = model.parse_losses(model(**data, mode='loss'))
            (loss / parts).backward()
        optimizer.step()
    return init, snapshot(model)


@pytest.fixture(scope='module')
def ddp_results():
    return run_distributed(ddp_worker, scenarios=SCENARIOS)


@pytest.mark.parametrize('name', list(SCENARIOS))
def test_ranks_end_with_identical_parameters(ddp_results, name):
    rank0, rank1 = (r[name]['params'] for r in ddp_results)
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key


@pytest.mark.parametrize('name', list(SCENARIOS))
def test_ddp_equals_one_process_averaging_the_ranks_gradients(
        ddp_results, name):
    init, ref = reference_run(SCENARIOS[name])
    ddp = ddp_results[0][name]['params']
    moved = 0
    for key, value in ref['params'].items():
        assert relative_error(ddp[key], value) < 1e-5, key
        moved += not torch.equal(value, init['params'][key])
    assert moved > 0


@pytest.mark.parametrize('rev, plain', REVERSIBLE_VS_PLAIN)
def test_reversible_equals_plain_under_ddp(ddp_results, rev, plain):
    for rank_results in ddp_results:
        rev_params = rank_results[rev]['params']
        plain_params = rank_results[plain]['params']
        assert rev_params.keys() == plain_params.keys()
        for key in rev_params:
            assert relative_error(rev_params[key],
                                  plain_params[key]) < 1e-5, key


@pytest.mark.parametrize('name',
                         ['rev_frozen', 'rev_frozen_find_unused',
                          'plain_frozen'])
def test_frozen_stages_stay_at_their_initial_values(ddp_results, name):
    init = snapshot(build(split_options(SCENARIOS[name])[0]))
    for rank_results in ddp_results:
        result = rank_results[name]
        frozen = [
            key for key in init['params']
            if key.startswith(('backbone.stem.', 'backbone.units.0.'))
        ]
        assert frozen
        for key in frozen:
            assert torch.equal(result['params'][key],
                               init['params'][key]), key
        # Frozen norms are in eval mode: running statistics untouched.
        for key, value in init['buffers'].items():
            if key.startswith(('backbone.stem.', 'backbone.units.0.')):
                assert torch.equal(result['buffers'][key], value), key
        trained = [k for k in init['params'] if k.startswith('backbone.units.1.')]
        assert any(not torch.equal(result['params'][k], init['params'][k])
                   for k in trained)


@pytest.mark.parametrize('name', ['rev_unused_unit', 'plain_unused_unit'])
def test_unused_unit_keeps_its_initial_parameters(ddp_results, name):
    init = snapshot(build(split_options(SCENARIOS[name])[0]))
    params = ddp_results[0][name]['params']
    unused = [k for k in init['params'] if k.startswith('backbone.units.2.')]
    assert unused
    for key in unused:
        assert torch.equal(params[key], init['params'][key]), key


@pytest.mark.parametrize('name', ['rev', 'rev_find_unused', 'plain'])
def test_batch_norms_count_one_update_per_step(ddp_results, name):
    """The backward recompute must not update the running statistics."""
    for rank_results in ddp_results:
        buffers = rank_results[name]['buffers']
        counts = [k for k in buffers if k.endswith('num_batches_tracked')]
        assert counts
        for key in counts:
            assert buffers[key].item() == NUM_STEPS, key
