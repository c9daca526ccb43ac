"""The training step every measurement runs: a model, its loss, a step.

- :class:`TrainingModel`: a backbone (or one unit) with the loss a step
  measures;
- :class:`TrainStep`: forward, loss, backward and (with a learning rate) an
  SGD update of one :class:`TrainingModel`, optionally under autocast, with
  a loss scale, and with the gradient of its input kept; called, it times
  itself (:func:`~mmrevode.analysis.timing.timed`);
- :func:`build_training_models` and :func:`train_steps`: the same network
  in several modes, with the same weights and the same batch.

The benchmark and the planner time it, the reconstruction error trains with
it, the mixed-precision drift and the peers read the gradients it leaves.
"""
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..engine.definition import DEFINITION_KEY
from ..models.reversible import Mode
from .memory import MemoryMeter, count_saved_bytes
from .models import MODES, backbone_registry, build_backbone, image_size
from .models import mode_options
from .timing import timed

#: The losses of :class:`TrainingModel`.
HEADS = ('linear', 'features', 'projection')


class TrainingModel(nn.Module):
    """A backbone with the loss a training step measures.

    Args:
        backbone (nn.Module): The backbone, or any module mapping the input
            to an output (or a tuple of outputs, the last one used).
        head (str): ``'linear'``: global average pooling of the last output,
            a linear classifier and cross-entropy (as the classifiers of
            the configs). ``'features'``: the sum of the means of all
            outputs (the backbone alone, as a detector's neck takes all its
            outputs). ``'projection'``: no loss; the forward returns the
            last output and :class:`TrainStep` back-propagates the fixed
            tensor given as labels from it (the gradient of the loss
            ``sum(out * labels)``). Defaults to ``'linear'``.
        num_classes (int): Classes of the linear head. Defaults to 10.
        in_channels (int): Channels of the last output. Defaults to 0
            (no linear layer; only for the other heads).
    """

    def __init__(self,
                 backbone: nn.Module,
                 head: str = 'linear',
                 num_classes: int = 10,
                 in_channels: int = 0):
        super().__init__()
        if head not in HEADS:
            raise ValueError(f'head must be one of {HEADS}, got {head!r}.')
        self.backbone = backbone
        self.head = head
        if head == 'linear':
            self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, images: Tensor, labels: Tensor) -> Tensor:
        """The loss of a batch (the last output for ``'projection'``)."""
        outs = self.backbone(images)
        if isinstance(outs, Tensor):
            outs = (outs, )
        if self.head == 'projection':
            return outs[-1]
        if self.head == 'features':
            return sum(out.float().mean() for out in outs)
        logits = self.fc(outs[-1].mean(dim=(2, 3)))
        if logits.dtype in (torch.float16, torch.bfloat16):
            logits = logits.float()  # the loss in float32 under autocast
        return F.cross_entropy(logits, labels)


def backbone_parts(backbone: nn.Module) -> Dict[str, nn.Module]:
    """The parts the saved bytes are split into: ``'stem'`` and
    ``'unit0'``, ``'unit1'``, ... (what is left is ``'other'``)."""
    parts = {'stem': backbone.stem} if hasattr(backbone, 'stem') else {}
    units = getattr(backbone, 'units', None)
    if units is None:
        units = [getattr(backbone, name)
                 for name in getattr(backbone, 'res_layers', [])]
    parts.update((f'unit{i}', unit) for i, unit in enumerate(units))
    return parts


class TrainStep:
    """Forward, loss, backward and SGD update of one model.

    Args:
        model (TrainingModel): The model and its loss.
        images (Tensor): The input batch.
        labels (Tensor): Its labels (for ``head='projection'``, the
            gradient of the output).
        lr (float, optional): SGD learning rate (momentum 0.9). A learning
            rate of 0 keeps the weights (and so the work) the same from step
            to step while the update still runs; None: no update, the
            gradients stay for the caller. Defaults to 0.01.
        weight_decay (float): Of the SGD update. Defaults to 0.
        autocast (torch.dtype, optional): Run the forward and the loss
            under ``torch.autocast`` in this dtype. Defaults to None.
        loss_scale (float): Multiply the loss by it before the backward
            (as a loss scaler does); :meth:`gradients` divides it out.
            Defaults to 1.
        input_grad (bool): Feed a fresh copy of the images that requires
            grad to every step and keep its gradient in
            :attr:`input_grad`. Defaults to False.
        keep_outputs (bool): Keep the last output of the latest forward
            (detached) in :attr:`output`. Defaults to False.
    """

    def __init__(self,
                 model: TrainingModel,
                 images: Tensor,
                 labels: Tensor,
                 lr: Optional[float] = 0.01,
                 weight_decay: float = 0.0,
                 autocast: Optional[torch.dtype] = None,
                 loss_scale: float = 1.0,
                 input_grad: bool = False,
                 keep_outputs: bool = False):
        self.model = model
        self.images = images
        self.labels = labels
        self.optimizer = None if lr is None else torch.optim.SGD(
            model.parameters(),
            lr=lr,
            momentum=0.9,
            weight_decay=weight_decay)
        self.autocast = autocast
        self.loss_scale = loss_scale
        self.keep_input_grad = input_grad
        self.keep_outputs = keep_outputs
        self.input_grad: Optional[Tensor] = None
        self.output: Optional[Tensor] = None
        self.device = images.device
        self._input = images

    def zero_grad(self):
        if self.optimizer is not None:
            self.optimizer.zero_grad(set_to_none=True)
        else:
            self.model.zero_grad(set_to_none=True)

    def forward(self,
                images: Optional[Tensor] = None,
                labels: Optional[Tensor] = None) -> Tensor:
        """The loss of ``images`` (by default the step's batch)."""
        if images is not None:
            self.images = images
        if labels is not None:
            self.labels = labels
        self._input = self.images
        if self.keep_input_grad:
            self._input = self.images.detach().clone().requires_grad_()
        if self.keep_outputs:
            handle = self.model.backbone.register_forward_hook(
                self._keep_output)
        try:
            with torch.autocast(
                    self.device.type,
                    dtype=self.autocast,
                    enabled=self.autocast is not None):
                return self.model(self._input, self.labels)
        finally:
            if self.keep_outputs:
                handle.remove()

    def _keep_output(self, module, inputs, outputs):
        last = outputs if isinstance(outputs, Tensor) else outputs[-1]
        self.output = last.detach().float()

    def backward(self, loss: Tensor):
        """Back-propagate ``loss`` (scaled) and update the weights."""
        if self.model.head == 'projection':
            loss.backward(self.labels)
        else:
            scaled = loss if self.loss_scale == 1 else loss * self.loss_scale
            scaled.backward()
        if self.keep_input_grad:
            self.input_grad = self._input.grad
        if self.optimizer is not None:
            self.optimizer.step()

    def run(self,
            images: Optional[Tensor] = None,
            labels: Optional[Tensor] = None) -> Tensor:
        """One step; the (unscaled) loss, detached."""
        self.zero_grad()
        loss = self.forward(images, labels)
        self.backward(loss)
        return loss.detach()

    def __call__(self) -> Tuple[float, float]:
        """Run a step; return its wall time and the process's CPU time."""
        return timed(self.run, self.device)

    def gradients(self, module: Optional[nn.Module] = None) -> Tensor:
        """The parameter gradients of ``module`` (by default the backbone)
        left by the latest step, flattened into one float32 vector, the
        loss scale divided out; parameters without a gradient are left
        out."""
        module = self.model.backbone if module is None else module
        return torch.cat([
            p.grad.detach().float().flatten() / self.loss_scale
            for p in module.parameters() if p.grad is not None
        ])

    def saved_bytes(self, by_part: bool = False) -> dict:
        """Run a step, counting the bytes its forward saves for backward.

        Returns:
            dict: ``saved_bytes`` and, with ``by_part``,
            ``saved_bytes_by_part`` (see :func:`backbone_parts`).
        """
        exclude = list(self.model.parameters()) + list(self.model.buffers())
        parts = backbone_parts(self.model.backbone) if by_part else None
        self.zero_grad()
        with count_saved_bytes(exclude, parts) as counted:
            loss = self.forward()
        self.backward(loss)
        result = dict(saved_bytes=counted['bytes'])
        if by_part:
            result['saved_bytes_by_part'] = counted['by_part']
        return result

    def memory(self, meter: MemoryMeter) -> Dict[str, Optional[int]]:
        """Memory of a step over what is held between steps (weights,
        optimizer state); the gradients it allocates count."""
        self.zero_grad()
        meter.start()
        loss = self.forward()
        held = meter.current()
        self.backward(loss)
        del loss
        return dict(forward_held_bytes=held, peak_bytes=meter.peak())


def build_training_models(spec: dict,
                          modes: Union[Sequence[str], Dict[str, Mode]],
                          head: str = 'linear',
                          num_classes: int = 10,
                          input_size: Union[int, Sequence[int]] = 32,
                          backbone_options: Optional[dict] = None,
                          device: str = 'cpu',
                          dtype: torch.dtype = torch.float32,
                          seed: int = 0) -> Dict[str, TrainingModel]:
    """One :class:`TrainingModel` per mode, all with the same weights, in
    training mode.

    ``modes`` names modes (keys of :data:`~mmrevode.analysis.models.MODES`
    or :data:`~mmrevode.analysis.models.EXACT_MODES`), or maps labels to
    the backbone's ``mode`` argument, e.g. ``{'r-p': ['reversible',
    'plain']}``, or to backbone arguments, e.g. ``{'exact':
    dict(mode='reversible', exact=True)}``.
    """
    if not isinstance(modes, dict):
        modes = {mode: mode_options(mode) for mode in modes}
    torch.manual_seed(seed)
    options = dict(backbone_options or {})
    backbone = build_backbone(spec, dict(options, **MODES['plain']))
    channels = 0
    if head == 'linear':
        with torch.no_grad():
            backbone.eval()
            probe = torch.zeros(1, getattr(backbone, 'in_channels', 3),
                                *image_size(input_size))
            channels = backbone(probe)[-1].shape[1]
    state = TrainingModel(backbone, head, num_classes, channels).state_dict()
    result = {}
    for label, mode in modes.items():
        cfg = dict(spec['cfg'], **options)
        cfg.update(mode if isinstance(mode, dict) else dict(mode=mode))
        model = TrainingModel(
            backbone_registry().build(cfg), head, num_classes, channels)
        # the same weights; a mode may be another network on purpose
        # (exact=True): each model keeps its own recorded definition
        own = model.state_dict()
        model.load_state_dict({
            k: own[k] if k.endswith(DEFINITION_KEY) else v
            for k, v in state.items()
        })
        result[label] = model.to(device=device, dtype=dtype).train()
    return result


#: The options of the training step (see :func:`train_steps`).
STEP_OPTIONS = dict(
    input_size=32,
    device='cpu',
    dtype=torch.float32,
    backbone_options=None,
    lr=0.0,
    seed=0,
    head='linear')


def train_steps(spec: dict, modes: Union[Sequence[str], Dict[str, Mode]],
                batch_size: int, **options) -> Dict[str, TrainStep]:
    """A :class:`TrainStep` per mode, on the same random batch.

    Args:
        spec (dict): The model, from
            :func:`~mmrevode.analysis.models.parse_spec`.
        modes (Sequence[str] | dict): Mode names, or labels mapped to the
            backbone's ``mode`` (see :func:`build_training_models`).
        batch_size (int): Images per step.
        **options: The training step (:data:`STEP_OPTIONS`):
            ``input_size``, the height and width of the images (32);
            ``device`` (``'cpu'``); ``dtype`` (``torch.float32``);
            ``backbone_options``, overrides of the backbone's arguments
            (None); ``lr``, the SGD learning rate (0); ``seed``, of the
            weights and the data (0); ``head``, the loss (``'linear'``, see
            :class:`TrainingModel`).
    """
    unknown = set(options) - set(STEP_OPTIONS)
    if unknown:
        raise TypeError(f'unknown options of a training step: '
                        f'{sorted(unknown)}.')
    options = dict(STEP_OPTIONS, **options)
    input_size, device, dtype, seed = (options['input_size'],
                                       options['device'], options['dtype'],
                                       options['seed'])
    models = build_training_models(
        spec, modes, head=options['head'], input_size=input_size,
        backbone_options=options['backbone_options'], device=device,
        dtype=dtype, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    in_channels = getattr(
        next(iter(models.values())).backbone, 'in_channels', 3)
    images = torch.randn(batch_size, in_channels, *image_size(input_size),
                         generator=generator).to(device=device, dtype=dtype)
    labels = torch.randint(0, 10, (batch_size, ), generator=generator)
    return {
        mode: TrainStep(model, images, labels.to(device), lr=options['lr'])
        for mode, model in models.items()
    }
