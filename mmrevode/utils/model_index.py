"""mmrevode's models in MMPretrain's model index.

``import mmrevode`` calls :func:`register_model_index`, so that
``mmpretrain.list_models('*hamiltonian*')``, ``get_model(name)``,
``inference_model(name, image, pretrained=PATH)`` and the inferencers
(``ImageClassificationInferencer(name)``) know the models of
``configs/revode/metafiles/*.yml``.

The index is found where ``pip install`` puts it (``mmrevode/.mim``, with a
copy of ``configs/``, as OpenMMLab packages do) or, for a source checkout
(``pip install -e .``), at the root of the repository next to the package.
"""
import os.path as osp
from typing import Optional

MODEL_INDEX_FILE = 'model-index.yml'
PACKAGE_DIR = osp.dirname(osp.dirname(osp.abspath(__file__)))


def find_model_index() -> Optional[str]:
    """The path of mmrevode's ``model-index.yml``, or None if not found.

    Looks in ``mmrevode/.mim`` (an installed package), then in the folder
    above the package (a source checkout).
    """
    for root in (osp.join(PACKAGE_DIR, '.mim'), osp.dirname(PACKAGE_DIR)):
        path = osp.join(root, MODEL_INDEX_FILE)
        if osp.isfile(path) and osp.isdir(osp.join(root, 'configs')):
            return path
    return None


def register_model_index(path: Optional[str] = None) -> bool:
    """Register mmrevode's models with MMPretrain's ``ModelHub``.

    Config paths in the metafiles are relative to the folder of the
    ``model-index.yml``. Registering twice (a reloaded package) does
    nothing the second time.

    Args:
        path (str, optional): The ``model-index.yml`` to register.
            Defaults to None (:func:`find_model_index`).

    Returns:
        bool: Whether models were registered by this call.
    """
    path = path or find_model_index()
    if path is None:
        return False
    try:
        from mmpretrain.apis import ModelHub
        from modelindex.load_model_index import load
    except ImportError:  # MMPretrain's model index needs `model-index`
        return False
    names = [model.name.lower() for model in load(path).models]
    if any(ModelHub.has(name) for name in names):
        return False
    ModelHub.register_model_index(path, config_prefix=osp.dirname(path))
    return True
