"""An optimizer wrapper that never applies a step with non-finite gradients."""
import math
from typing import Optional

import torch
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS


def grad_norm(optimizer: torch.optim.Optimizer) -> Optional[float]:
    """The total 2-norm of the gradients of ``optimizer``'s parameters, or
    None when no parameter has a gradient."""
    grads = [
        p.grad for group in optimizer.param_groups for p in group['params']
        if p.grad is not None
    ]
    if not grads:
        return None
    return float(torch.nn.utils.get_total_norm(grads))


@OPTIM_WRAPPERS.register_module()
class GuardedOptimWrapper(OptimWrapper):
    """:class:`mmengine.optim.OptimWrapper` that skips a step whose
    gradients are not finite.

    Before every step the total norm of the gradients is computed; when it
    is NaN or infinite (a NaN or infinite loss gives one), the step is not
    applied, so the weights stay finite, and the norm is kept in
    :attr:`skipped_grad_norm` until :meth:`pop_skipped_grad_norm` reads it.
    :class:`~mmrevode.engine.DivergenceHook` reads it after every iteration
    and stops the run (or logs the skipped step). Everything else is
    MMEngine's ``OptimWrapper`` (gradient clipping, accumulation, the
    schedulers' step counting). With ``--amp``, ``tools/train.py`` uses
    MMEngine's ``AmpOptimWrapper`` instead, whose loss scaler skips steps
    with non-finite gradients by design.

    Args:
        **kwargs: The arguments of :class:`mmengine.optim.OptimWrapper`
            (``optimizer``, ``accumulative_counts``, ``clip_grad``).

    Example:
        >>> optim_wrapper = dict(
        ...     type='GuardedOptimWrapper',
        ...     optimizer=dict(type='SGD', lr=0.1, momentum=0.9))
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.skipped_grad_norm: Optional[float] = None

    def step(self, **kwargs) -> None:
        """Apply the step unless the gradients' norm is not finite.

        Args:
            **kwargs: Passed to the optimizer's ``step``.
        """
        norm = grad_norm(self.optimizer)
        if norm is not None and not math.isfinite(norm):
            self.skipped_grad_norm = norm
            return
        super().step(**kwargs)

    def pop_skipped_grad_norm(self) -> Optional[float]:
        """The gradient norm of the last skipped step (None if no step was
        skipped since the last call), forgetting it."""
        norm, self.skipped_grad_norm = self.skipped_grad_norm, None
        return norm
