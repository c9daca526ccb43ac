"""mmrevode: reversible ODE-inspired residual networks for MMPretrain.

Importing the package registers its backbones, blocks, datasets and the
checkpoint loader into the OpenMMLab registries, so configs only need
``custom_imports = dict(imports=['mmrevode'], allow_failed_imports=False)``.
"""
from .version import __version__
from . import datasets, engine, models  # noqa: F401  (registration)

__all__ = ['__version__']
