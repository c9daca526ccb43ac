"""How exactly a unit's input is rebuilt from its output, per scheme and depth.

The reversible backward never stores a unit's inner states: it rebuilds them
from the unit's output, one step at a time, backwards. In exact arithmetic
the rebuilt states are the forward's; in floating point every step adds
round-off, and a scheme whose inverse amplifies it (a step with
``|alpha| < 1``, or a long unit of a non-contractive inverse) drifts.
:func:`unit_errors` measures the drift directly: for every unit of a
backbone it runs the blocks forward from the unit's real input, then inverts
them all (:meth:`ReversibleBlock.inverse`), and reports

    error = ||(a, b) - (a0, b0)|| / ||(a0, b0)||

where ``(a0, b0)`` is the pair the unit started from and ``(a, b)`` the one
rebuilt. Norms run as in the reversible backward: with batch statistics,
running statistics untouched. :func:`measure_reconstruction` does so in
float32 and float64, at initialisation and after a few SGD steps on a small
synthetic classification task (:class:`PatternData`), so that the weights
are no longer the initial ones.
"""
from typing import List, Optional, Sequence

import torch
from torch import Tensor, nn

from ..models.reversible import frozen_running_stats
from .cli import Progress
from .models import build_backbone, parse_spec
from .training import TrainingModel, TrainStep

RECONSTRUCTION_FIELDS = ('name', 'model', 'arch', 'depth', 'blocks', 'h',
                         'state', 'train_steps', 'dtype', 'batch_size',
                         'input_size', 'unit_errors', 'max_error')


class PatternData:
    """Ten fixed random patterns; an image is one of them plus noise.

    Args:
        input_size (int): Height and width of the images. Defaults to 32.
        num_classes (int): Number of patterns. Defaults to 10.
        noise (float): Standard deviation of the noise. Defaults to 0.5.
        seed (int): Seed of the patterns and the batches. Defaults to 0.
    """

    def __init__(self,
                 input_size: int = 32,
                 num_classes: int = 10,
                 noise: float = 0.5,
                 seed: int = 0):
        self.generator = torch.Generator().manual_seed(seed)
        self.patterns = torch.randn(
            num_classes, 3, input_size, input_size, generator=self.generator)
        self.noise = noise

    def batch(self, batch_size: int):
        """A batch of images and their labels."""
        labels = torch.randint(0, len(self.patterns), (batch_size, ),
                               generator=self.generator)
        noise = torch.randn(batch_size, *self.patterns.shape[1:],
                            generator=self.generator)
        return self.patterns[labels] + self.noise * noise, labels


def train(backbone: nn.Module,
          data: PatternData,
          steps: int,
          batch_size: int,
          lr: float = 0.05) -> List[float]:
    """A few SGD steps (:class:`~mmrevode.analysis.training.TrainStep`,
    weight decay 1e-4) of backbone + pooling + linear head on batches of
    ``data``; the losses."""
    if steps <= 0:
        return []
    backbone.train()
    with torch.no_grad():
        x, _ = data.batch(2)
        channels = backbone(x)[-1].shape[1]
    model = TrainingModel(backbone, 'linear', len(data.patterns), channels)
    step = TrainStep(model, x, None, lr=lr, weight_decay=1e-4)
    return [
        step.run(*data.batch(batch_size)).item() for _ in range(steps)
    ]


def _pair_norm(a: Tensor, b: Tensor) -> Tensor:
    return torch.sqrt(a.square().sum() + b.square().sum())


@torch.no_grad()
def unit_errors(backbone: nn.Module, images: Tensor) -> List[float]:
    """Relative error of rebuilding each unit's input from its output.

    Runs in training mode with frozen running statistics (batch statistics,
    as the reversible backward does); the model's buffers are unchanged.

    Args:
        backbone (nn.Module): A reversible backbone (with ``iter_units``).
        images (Tensor): The input batch.

    Returns:
        list[float]: One error per unit.
    """
    errors = []

    def forward_and_invert(unit: nn.Module, x: Tensor) -> Tensor:
        blocks = list(unit.blocks)
        a0, b0 = blocks[0].split(x)
        a, b = a0, b0
        for block in blocks:
            a, b = block(a, b)
        out = blocks[-1].merge(a, b)
        for block in reversed(blocks):
            a, b = block.inverse(a, b)
        errors.append((_pair_norm(a - a0, b - b0) / _pair_norm(a0, b0)).item())
        return out

    was_training = backbone.training
    backbone.train()
    try:
        with frozen_running_stats(backbone):
            for _ in backbone.iter_units(images, forward_and_invert):
                pass
    finally:
        backbone.train(was_training)
    return errors


def measure_reconstruction(spec: dict,
                           dtypes: Sequence[str] = ('float32', 'float64'),
                           train_steps: int = 20,
                           batch_size: int = 16,
                           input_size: int = 32,
                           lr: float = 0.05,
                           backbone_options: Optional[dict] = None,
                           seed: int = 0,
                           progress=None) -> List[dict]:
    """The unit errors of one model, initialised and trained, in every dtype.

    Args:
        spec (dict): The model, from
            :func:`~mmrevode.analysis.models.parse_spec`.
        dtypes (Sequence[str]): Defaults to float32 and float64.
        train_steps (int): SGD steps before the ``'trained'`` measurement.
            Defaults to 20.
        batch_size (int): Defaults to 16.
        input_size (int): Defaults to 32.
        lr (float): Learning rate of the training steps. Defaults to 0.05.
        backbone_options (dict, optional): Overrides of the backbone's
            arguments. Defaults to None.
        seed (int): Defaults to 0.
        progress (callable, optional): Called after every measurement.

    Returns:
        list[dict]: One record per state and dtype (fields:
        :data:`RECONSTRUCTION_FIELDS`, and ``train_losses``).
    """
    progress = progress or (lambda: None)
    backbone = build_backbone(spec, backbone_options, seed=seed)
    data = PatternData(input_size, seed=seed)
    images, _ = data.batch(batch_size)
    records = []
    for state in ('init', 'trained'):
        if state == 'trained':
            losses = train(backbone, data, train_steps, batch_size, lr)
            progress()
        else:
            losses = []
        for dtype in dtypes:
            model = backbone.to(getattr(torch, dtype))
            errors = unit_errors(model, images.to(getattr(torch, dtype)))
            records.append(
                dict(
                    name=spec['name'],
                    model=spec['model'],
                    arch=spec['arch'],
                    depth=spec['depth'],
                    blocks=spec['blocks'],
                    h=getattr(backbone, 'h', None),
                    state=state,
                    train_steps=train_steps if state == 'trained' else 0,
                    train_losses=losses,
                    dtype=dtype,
                    batch_size=batch_size,
                    input_size=input_size,
                    unit_errors=errors,
                    max_error=max(errors)))
            progress()
        backbone.float()
    return records


def run_reconstruction(specs: Sequence[str],
                       progress_bar: bool = True,
                       **kwargs) -> dict:
    """Measure every model (``'TYPE[:ARCH]'``), with a progress bar on
    stderr (``progress_bar``).

    Returns:
        dict: ``torch`` (its version) and ``records`` (see
        :func:`measure_reconstruction`, whose arguments ``kwargs`` are).
    """
    parsed = [parse_spec(s) for s in specs]
    dtypes = kwargs.get('dtypes', ('float32', 'float64'))
    progress = Progress(len(parsed) * (2 * len(dtypes) + 1), progress_bar)
    records = []
    for spec in parsed:
        records += measure_reconstruction(
            spec, progress=progress.update, **kwargs)
    progress.close()
    return dict(torch=torch.__version__, records=records)
