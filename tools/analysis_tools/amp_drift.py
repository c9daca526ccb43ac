"""Mixed precision and the reversible backward: how far the gradients move.

For each backbone, one training step (train-mode norms, a fixed random
linear classifier on the pooled last output, cross-entropy with random
labels) is run four times from the same weights: with the reversible and
with the plain backward, each in float32 and under ``torch.autocast``
(bfloat16 on CPU, float16 on CUDA by default). Reported, as relative errors
``||g - g_ref|| / ||g_ref||`` over all parameter gradients together:

- ``amp_drift``: plain autograd under autocast against plain float32, i.e.
  what mixed precision itself costs;
- ``rev_amp``: the reversible backward under autocast against plain
  float32;
- ``rev_vs_plain_amp``: reversible against plain, both under autocast;
- ``rev_vs_plain_fp32``: the same in float32 (reconstruction round-off);
- ``out_drift``: the backbone's output under autocast against float32.

Each figure is the largest over ``--seeds`` initialisations. Models are
``TYPE:ARCH`` with an MMPretrain backbone type and a preset name or a dict
literal (``"HamiltonianNet:{'blocks': [2, 2], 'widths': [8, 16]}"``).

Example::

    python tools/analysis_tools/amp_drift.py HamiltonianNet:38 \\
        MidpointNet:62 LeapfrogNet:62 --batch-size 32
"""
import argparse
import ast
import copy
import logging
import os.path as osp
import sys
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from torch import nn

try:
    import mmrevode  # noqa: F401
except ImportError:  # run from a source checkout that is not installed
    sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(
        osp.abspath(__file__)))))
    import mmrevode  # noqa: F401

METRICS = ('amp_drift', 'rev_amp', 'rev_vs_plain_amp', 'rev_vs_plain_fp32',
           'out_drift')


def build_backbone(spec: str, **options) -> nn.Module:
    """Build ``TYPE:ARCH`` (e.g. ``HamiltonianNet:38``) from MMPretrain's
    registry, freshly initialised."""
    from mmengine.logging import MMLogger
    from mmpretrain.registry import MODELS
    type_name, _, arch = spec.partition(':')
    cfg = dict(type=type_name, **options)
    if arch:
        cfg['arch'] = ast.literal_eval(arch) if arch.startswith('{') \
            else arch
    model = MODELS.build(cfg)
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        model.init_weights()
    finally:
        logger.setLevel(level)
    return model


def set_reversible(model: nn.Module, reversible: bool) -> nn.Module:
    for module in model.modules():
        if hasattr(module, 'reversible'):
            module.reversible = reversible
    return model


def _step(backbone, head, x, labels, dtype, loss_scale):
    """One forward and backward; the gradients and the last output."""
    backbone.zero_grad(set_to_none=True)
    with torch.autocast(x.device.type, dtype=dtype, enabled=dtype is not None):
        out = backbone(x)[-1]
        logits = head(out.mean((2, 3)))
        loss = F.cross_entropy(logits.float(), labels)
    (loss * loss_scale).backward()
    grads = [
        p.grad.detach().float().flatten() / loss_scale
        for p in backbone.parameters() if p.grad is not None
    ]
    return torch.cat(grads), out.detach().float()


def _relative(a, b) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def measure(backbone: nn.Module,
            batch_size: int = 16,
            image_size: int = 32,
            num_classes: int = 10,
            dtype: Optional[torch.dtype] = None,
            loss_scale: Optional[float] = None,
            seed: int = 0) -> Dict[str, float]:
    """The figures of the module docstring for one model and one input.

    Args:
        backbone (nn.Module): A reversible backbone in float32; its
            ``reversible`` flags are switched on copies.
        dtype (torch.dtype, optional): The autocast dtype. Defaults to
            bfloat16 on CPU, float16 on CUDA.
        loss_scale (float, optional): Constant loss scale (as a loss scaler
            would apply). Defaults to 1 for bfloat16, 1024 for float16.
    """
    device = next(backbone.parameters()).device
    if dtype is None:
        dtype = torch.float16 if device.type == 'cuda' else torch.bfloat16
    if loss_scale is None:
        loss_scale = 1024.0 if dtype == torch.float16 else 1.0
    gen = torch.Generator().manual_seed(seed)
    channels = getattr(backbone, 'in_channels', 3)
    x = torch.randn(batch_size, channels, image_size, image_size,
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
            model = set_reversible(copy.deepcopy(backbone), reversible)
            runs[reversible, amp] = _step(model, head, x, labels, amp,
                                          loss_scale if amp else 1.0)
    ref_grad, ref_out = runs[False, None]
    return dict(
        amp_drift=_relative(runs[False, dtype][0], ref_grad),
        rev_amp=_relative(runs[True, dtype][0], ref_grad),
        rev_vs_plain_amp=_relative(runs[True, dtype][0],
                                   runs[False, dtype][0]),
        rev_vs_plain_fp32=_relative(runs[True, None][0], ref_grad),
        out_drift=_relative(runs[False, dtype][1], ref_out))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('models', nargs='+', help='TYPE:ARCH specs')
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--image-size', type=int, default=32)
    parser.add_argument('--seeds', type=int, default=3)
    parser.add_argument(
        '--dtype',
        choices=['bfloat16', 'float16'],
        help='autocast dtype; bfloat16 on CPU, float16 on CUDA by default')
    parser.add_argument(
        '--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    dtype = getattr(torch, args.dtype) if args.dtype else None
    print(f'device {args.device}, autocast dtype '
          f'{args.dtype or ("float16" if args.device != "cpu" else "bfloat16")}'
          f', batch {args.batch_size}, {args.image_size}x{args.image_size}, '
          f'max over {args.seeds} seeds')
    print('| model | ' + ' | '.join(METRICS) + ' |')
    print('|---' * (len(METRICS) + 1) + '|')
    for spec in args.models:
        worst = dict.fromkeys(METRICS, 0.0)
        for seed in range(args.seeds):
            torch.manual_seed(seed)
            backbone = build_backbone(spec).to(args.device)
            result = measure(
                backbone,
                batch_size=args.batch_size,
                image_size=args.image_size,
                dtype=dtype,
                seed=seed)
            worst = {k: max(worst[k], result[k]) for k in METRICS}
        print(f'| {spec} | ' + ' | '.join(f'{worst[k]:.1e}'
                                          for k in METRICS) + ' |')


if __name__ == '__main__':
    main()
