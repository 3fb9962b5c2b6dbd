"""clickmask: annotate segmentation datasets with clicks instead of outlines."""

__version__ = "0.1.0"
