"""Optional packages of the tools: one line that names what to install.

A tool that needs a package outside ``install_requires`` checks for it
before it starts its work with :func:`require_packages`; a missing one ends
the tool with a single line naming the package and the ``pip install``
that brings it (the extras of ``setup.py``).
"""
import importlib
from typing import Dict, List

#: The extra of ``setup.py`` that installs each optional module ('' for the
#: package's own requirements).
EXTRAS: Dict[str, str] = dict(
    onnx='deploy',
    onnxruntime='deploy',
    onnxscript='deploy',
    mmdet='det',
    mmcv='det',
    memcnn='bench',
    revlib='bench',
    matplotlib='',
)


def install_command(extra: str) -> str:
    """``pip install -e .`` with ``extra`` (run in the repository)."""
    return f'pip install -e ".[{extra}]"' if extra else 'pip install -e .'


def missing_packages(*modules: str) -> List[str]:
    """The ``modules`` that cannot be imported."""
    missing = []
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(module)
    return missing


def require_packages(tool: str, *modules: str) -> None:
    """End ``tool`` with one line if any of ``modules`` is missing.

    Args:
        tool (str): The tool's name, e.g. ``'pytorch2onnx.py'``.
        *modules (str): The modules it needs (keys of :data:`EXTRAS`).

    Raises:
        SystemExit: ``'TOOL needs MODULE[, ...]: pip install -e ".[EXTRA]"'``
            (exit status 1) when one is missing.
    """
    missing = missing_packages(*modules)
    if not missing:
        return
    extras = sorted({EXTRAS.get(m, '') for m in missing})
    commands = ' and '.join(install_command(e) for e in extras)
    raise SystemExit(f'{tool} needs {", ".join(missing)}: {commands}')
