"""Mixed precision with the reversible backward.

Under ``torch.autocast`` (bfloat16 on CPU here, float16 on a GPU) the
reversible backward rebuilds each step's input in the pair's own dtype
(that of the unit's input: bfloat16 or float16 in a backbone whose stem
ran under autocast) from the recomputed ``F(b)``, which is bitwise the
forward's; the reconstruction round-off is then that of the low-precision
dtype. Its gradients differ from plain autograd's under autocast by that
and by where the roundings of the backward fall: the tests require the
reversible gradients to be as close to float32 ones as plain autocast
gradients are, and the reversible-vs-plain difference to stay below the
autocast drift itself. The figures come from
``tools/analysis_tools/amp_drift.py`` (:mod:`mmrevode.analysis.amp`).

MMEngine 0.10.7's ``AmpOptimWrapper`` (what ``tools/train.py --amp``
selects) refuses to be built without a GPU; the last CPU test pins that.
"""
import copy

import pytest
import torch

from mmrevode.analysis import amp_drift, build_backbone, set_mode

TINY = "{'blocks': [2, 2], 'widths': [8, 16]}"
SCHEMES = ['HamiltonianNet', 'MidpointNet', 'LeapfrogNet']


def tiny(scheme, device='cpu'):
    return build_backbone(f'{scheme}:{TINY}', seed=0).to(device)


@pytest.mark.parametrize('scheme', SCHEMES)
def test_bfloat16_reversible_gradients_are_as_good_as_plain_ones(scheme):
    result = amp_drift(tiny(scheme), batch_size=8, input_size=16)
    # autocast was active, and bfloat16 behaves as bfloat16 does
    # (measured 0.06 - 0.10 on these models)
    assert 1e-3 < result['amp_drift'] < 0.3
    # the reversible backward adds nothing to the drift of autocast...
    assert result['rev_amp'] < 1.25 * result['amp_drift']
    # ... and its difference from plain autocast autograd stays below that
    # drift (measured 0.003 - 0.03)
    assert result['rev_vs_plain_amp'] < result['amp_drift']
    assert result['rev_vs_plain_fp32'] < 1e-5


def test_autocast_gives_plain_outputs_and_parameter_dtype_gradients():
    model = tiny('HamiltonianNet')
    plain = set_mode(copy.deepcopy(model), 'plain')
    x = torch.randn(4, 3, 16, 16)
    outs = []
    for m in (model, plain):
        with torch.autocast('cpu', dtype=torch.bfloat16):
            stem_out = m.stem(x)
            unit_out = m.units[0](stem_out)
            out = m(x)[-1]
        # The stem's output is bfloat16 under autocast; the unit keeps its
        # state pair, and so its output, in float32.
        assert stem_out.dtype == torch.bfloat16
        assert unit_out.dtype == torch.float32
        out.float().sum().backward()
        assert all(p.grad.dtype == torch.float32 for p in m.parameters())
        outs.append(out)
    assert torch.equal(outs[0], outs[1])


def test_amp_optim_wrapper_needs_a_gpu_in_mmengine_0_10():
    """``--amp`` selects ``AmpOptimWrapper``; without CUDA (or NPU, MLU,
    MUSA) MMEngine 0.10.7 refuses to build it."""
    from mmengine.optim import AmpOptimWrapper
    optimizer = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1)
    if torch.cuda.is_available():
        wrapper = AmpOptimWrapper(optimizer=optimizer, loss_scale='dynamic')
        assert wrapper.loss_scaler.is_enabled()
    else:
        with pytest.raises(AssertionError, match='only available'):
            AmpOptimWrapper(optimizer=optimizer, loss_scale='dynamic')


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
@pytest.mark.parametrize('scheme', SCHEMES)
def test_float16_on_cuda_reversible_gradients_are_as_good_as_plain_ones(
        scheme):
    result = amp_drift(
        tiny(scheme, 'cuda'), batch_size=8, input_size=16,
        dtype=torch.float16)
    assert 1e-5 < result['amp_drift'] < 0.1
    assert result['rev_amp'] < 1.25 * result['amp_drift'] + 1e-4
    assert result['rev_vs_plain_amp'] < result['amp_drift'] + 1e-4
