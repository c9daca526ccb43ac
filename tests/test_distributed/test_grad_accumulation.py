"""Gradient accumulation (``optim_wrapper.accumulative_counts``) with the
reversible backward, in one process (float64).

Accumulating the gradients of ``k`` micro-batches through MMEngine's
``OptimWrapper(accumulative_counts=k)`` gives the update of one batch ``k``
times larger, exactly (to round-off), when no layer mixes samples: that is
the case with GroupNorm. With BatchNorm in training mode each micro-batch is
normalised with its own statistics, so the two updates differ; what still
holds is that the reversible and plain backward agree on the accumulated
update. (Under DDP the same holds; see ``test_ddp.py``, scenario
``rev_accumulate``.)
"""
import pytest
import torch
import torch.nn.functional as F
from mmengine.optim import OptimWrapper
from torch import nn

from dist_utils import relative_error

NUM_UPDATES = 3
BATCH = 8
MICRO = 2  # accumulative_counts
GN = dict(type='GN', num_groups=2)


class TinyNet(nn.Module):

    def __init__(self, norm_cfg, reversible, exact=False):
        super().__init__()
        from mmrevode.models import HamiltonianNet
        self.backbone = HamiltonianNet(
            arch=dict(blocks=[2, 1], widths=[8, 16]),
            h=0.5,
            norm_cfg=norm_cfg,
            mode='reversible' if reversible else 'plain',
            exact=exact)
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        return self.head(self.backbone(x)[-1].mean((2, 3)))


def build(norm_cfg, reversible, exact=False):
    torch.manual_seed(0)
    return TinyNet(norm_cfg, reversible, exact).double().train()


def batches():
    gen = torch.Generator().manual_seed(0)
    return [(torch.randn(BATCH, 3, 8, 8, generator=gen, dtype=torch.float64),
             torch.randint(0, 4, (BATCH, ), generator=gen))
            for _ in range(NUM_UPDATES)]


def train(model, accumulative_counts):
    optim_wrapper = OptimWrapper(
        torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
        accumulative_counts=accumulative_counts)
    for x, y in batches():
        for xs, ys in zip(x.chunk(accumulative_counts),
                          y.chunk(accumulative_counts)):
            # update_params scales the loss by 1 / accumulative_counts and
            # steps on every accumulative_counts-th call.
            optim_wrapper.update_params(F.cross_entropy(model(xs), ys))
    assert optim_wrapper.optimizer.state  # it did step
    return dict(model.named_parameters())


@pytest.mark.parametrize('exact', [False, True], ids=['float', 'exact'])
@pytest.mark.parametrize('reversible', [True, False])
def test_accumulation_equals_the_larger_batch_with_group_norm(
        reversible, exact):
    accumulated = train(build(GN, reversible, exact), MICRO)
    large = train(build(GN, reversible=False, exact=exact), 1)
    # in exact mode too: with GroupNorm each sample's states, and so their
    # rounding to the grid, do not depend on the rest of the batch
    for name, value in large.items():
        assert relative_error(accumulated[name], value) < 1e-10, name


def test_with_batch_norm_reversible_and_plain_accumulate_alike():
    bn = dict(type='BN')
    accumulated = train(build(bn, reversible=True), MICRO)
    plain = train(build(bn, reversible=False), MICRO)
    for name, value in plain.items():
        assert relative_error(accumulated[name], value) < 1e-10, name
    # ... but not like the larger batch: BN's batch statistics differ.
    large = train(build(bn, reversible=False), 1)
    assert max(
        relative_error(accumulated[n], v) for n, v in large.items()) > 1e-4
