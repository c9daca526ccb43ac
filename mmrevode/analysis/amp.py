"""Mixed precision and the reversible backward: how far the gradients move.

For a backbone, one training step
(:class:`~mmrevode.analysis.training.TrainStep` without the update:
train-mode norms, a fixed random linear classifier on the pooled last
output, cross-entropy with random labels) is run four times from the same
weights: with the reversible and with the plain backward, each in float32
and under ``torch.autocast`` (bfloat16 on CPU, float16 on CUDA by default).
:func:`amp_drift` reports, as relative errors
``||g - g_ref|| / ||g_ref||`` over all parameter gradients together:

- ``amp_drift``: plain autograd under autocast against plain float32, i.e.
  what mixed precision itself costs;
- ``rev_amp``: the reversible backward under autocast against plain
  float32;
- ``rev_vs_plain_amp``: reversible against plain, both under autocast;
- ``rev_vs_plain_fp32``: the same in float32 (reconstruction round-off);
- ``out_drift``: the backbone's output under autocast against float32.
"""
import copy
from typing import Callable, Dict, Optional

import torch
from torch import nn

from .models import build_backbone, set_mode
from .training import TrainingModel, TrainStep

AMP_METRICS = ('amp_drift', 'rev_amp', 'rev_vs_plain_amp',
               'rev_vs_plain_fp32', 'out_drift')


def _relative(a, b) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def amp_drift(backbone: nn.Module,
              batch_size: int = 16,
              input_size: int = 32,
              num_classes: int = 10,
              dtype: Optional[torch.dtype] = None,
              loss_scale: Optional[float] = None,
              seed: int = 0) -> Dict[str, float]:
    """The figures of the module docstring for one model and one input.

    Args:
        backbone (nn.Module): A reversible backbone in float32; its
            ``reversible`` flags are switched on copies.
        batch_size (int): Defaults to 16.
        input_size (int): Height and width of the images. Defaults to 32.
        num_classes (int): Classes of the linear head. Defaults to 10.
        dtype (torch.dtype, optional): The autocast dtype. Defaults to
            bfloat16 on CPU, float16 on CUDA.
        loss_scale (float, optional): Constant loss scale (as a loss scaler
            would apply). Defaults to 1 for bfloat16, 1024 for float16.
        seed (int): Seed of the data and the head. Defaults to 0.

    Returns:
        dict[str, float]: The metrics of :data:`AMP_METRICS`.
    """
    device = next(backbone.parameters()).device
    if dtype is None:
        dtype = torch.float16 if device.type == 'cuda' else torch.bfloat16
    if loss_scale is None:
        loss_scale = 1024.0 if dtype == torch.float16 else 1.0
    gen = torch.Generator().manual_seed(seed)
    channels = getattr(backbone, 'in_channels', 3)
    x = torch.randn(batch_size, channels, input_size, input_size,
                    generator=gen).to(device)
    labels = torch.randint(0, num_classes, (batch_size, ),
                           generator=gen).to(device)
    backbone = backbone.train()
    with torch.no_grad():
        width = backbone(x[:1])[-1].shape[1]
    head = nn.Linear(width, num_classes)
    with torch.no_grad():
        head.weight.copy_(
            torch.randn(num_classes, width, generator=gen) / width**0.5)
        head.bias.zero_()
    head = head.to(device)

    runs = {}
    for reversible in (True, False):
        for amp in (None, dtype):
            model = TrainingModel(
                set_mode(copy.deepcopy(backbone),
                         'reversible' if reversible else 'plain'),
                'linear', num_classes, width).to(device)
            model.fc.load_state_dict(head.state_dict())
            step = TrainStep(model, x, labels, lr=None, autocast=amp,
                             loss_scale=loss_scale if amp else 1.0,
                             keep_outputs=True)
            step.run()
            runs[reversible, amp] = step.gradients(), step.output
    ref_grad, ref_out = runs[False, None]
    return dict(
        amp_drift=_relative(runs[False, dtype][0], ref_grad),
        rev_amp=_relative(runs[True, dtype][0], ref_grad),
        rev_vs_plain_amp=_relative(runs[True, dtype][0],
                                   runs[False, dtype][0]),
        rev_vs_plain_fp32=_relative(runs[True, None][0], ref_grad),
        out_drift=_relative(runs[False, dtype][1], ref_out))


def worst_amp_drift(spec: str,
                    seeds: int = 3,
                    device: str = 'cpu',
                    backbone_options: Optional[dict] = None,
                    progress: Optional[Callable[[], None]] = None,
                    **kwargs) -> Dict[str, float]:
    """The largest of each metric of :func:`amp_drift` over ``seeds``
    initialisations (seeds 0, 1, ...) of the model ``spec``.

    Args:
        spec (str): The model, ``'TYPE[:ARCH]'``.
        seeds (int): Number of initialisations. Defaults to 3.
        device (str): Defaults to ``'cpu'``.
        backbone_options (dict, optional): Overrides of the backbone's
            arguments. Defaults to None.
        progress (callable, optional): Called after every seed.
        **kwargs: Arguments of :func:`amp_drift`.
    """
    worst = dict.fromkeys(AMP_METRICS, 0.0)
    for seed in range(seeds):
        backbone = build_backbone(spec, backbone_options, seed=seed)
        result = amp_drift(backbone.to(device), seed=seed, **kwargs)
        worst = {k: max(worst[k], result[k]) for k in AMP_METRICS}
        if progress:
            progress()
    return worst
