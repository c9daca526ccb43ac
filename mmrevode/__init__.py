"""mmrevode: reversible ODE-inspired residual networks for MMPretrain.

Importing the package registers its backbones, blocks, datasets and the
checkpoint loader into the OpenMMLab registries, so configs only need
``custom_imports = dict(imports=['mmrevode'], allow_failed_imports=False)``,
and adds its models to MMPretrain's model index (``mmpretrain.list_models``,
``get_model``, ``inference_model``; see :mod:`mmrevode.utils.model_index`).
"""
from .version import __version__
from . import datasets, engine, models  # noqa: F401  (registration)
from .utils.model_index import register_model_index

register_model_index()

__all__ = ['__version__']
