"""rotated_det: rotated (oriented) object detection for PyTorch, in the style of Detectron2.

Subpackages (see docs/design.md for the layering): config, structures, layers, data, modeling,
solver, checkpoint, engine, evaluation, export, utils. Importing this package loads nothing heavy;
the compiled operators load with ``rotated_det.layers``.
"""

__version__ = "0.1.0"
