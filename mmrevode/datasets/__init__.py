"""Datasets registered into MMPretrain's ``DATASETS``."""
