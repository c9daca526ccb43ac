"""Models: the reversible engine, the blocks of each scheme, the backbones."""
from .backbones import *  # noqa: F401,F403
from .blocks import *  # noqa: F401,F403
from .reversible import *  # noqa: F401,F403
from .backbones import __all__ as _backbones
from .blocks import __all__ as _blocks
from .reversible import __all__ as _reversible

__all__ = _backbones + _blocks + _reversible
