"""mmrevode: reversible ODE-inspired residual networks for MMPretrain.

Importing the package registers its backbones, blocks, datasets and hooks
into the OpenMMLab registries, so configs only need
``custom_imports = dict(imports=['mmrevode'], allow_failed_imports=False)``,
and adds its models to MMPretrain's model index (``mmpretrain.list_models``,
``get_model``, ``inference_model``; see :mod:`mmrevode.utils.model_index`).

It also calls :func:`mmrevode.engine.install_checkpoint_loaders`, which
replaces MMEngine's checkpoint loaders of local paths and ``http(s)://``
for the whole process (every library loading through MMEngine) with ones
that run no code from the file, so a config that imports mmrevode loads
checkpoints safely whatever tool runs it.
"""
from .version import __version__
from . import datasets, engine, models  # noqa: F401  (registration)
from .engine import install_checkpoint_loaders
from .utils.model_index import register_model_index

install_checkpoint_loaders()
register_model_index()

__all__ = ['__version__']
