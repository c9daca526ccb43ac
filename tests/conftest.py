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
