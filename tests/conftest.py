import logging

import pytest
from mmengine.logging import MMLogger


@pytest.fixture(autouse=True)
def quiet_mmengine_logger():
    """Keep ``init_weights`` from printing one line per parameter."""
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    yield
    logger.setLevel(level)


@pytest.fixture(autouse=True)
def isolated_default_scope():
    """Undo the default registry scope a test sets (MMDetection's tests
    set 'mmdet', which would send later MMPretrain builds to the wrong
    registry)."""
    from mmengine.registry import DefaultScope
    saved = DefaultScope._instance_dict.copy()
    yield
    DefaultScope._instance_dict.clear()
    DefaultScope._instance_dict.update(saved)
