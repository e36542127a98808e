"""Running an exported ONNX detector in ONNX Runtime or OpenVINO (CPU), then its final NMS.

Imports neither torch nor the runtimes until used: ``OnnxDetector(path, "onnxruntime")`` needs
``onnxruntime``, ``OnnxDetector(path, "openvino")`` needs ``openvino``; both need numpy and
:mod:`rotated_det.export.onnx_postprocess`.

OpenVINO's CPU plugin runs in bfloat16 by default on processors with AMX or AVX512-BF16
(``INFERENCE_PRECISION_HINT``); :class:`OnnxDetector` asks for float32 unless told otherwise,
so that its outputs match PyTorch's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .onnx_postprocess import METADATA_KEYS, postprocess

__all__ = ["RUNTIMES", "OnnxDetector", "read_metadata"]

RUNTIMES = ("onnxruntime", "openvino")

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray]


def read_metadata(path: str) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file, read with ``onnx`` (or ONNX Runtime)."""
    try:
        import onnx

        proto = onnx.load(path, load_external_data=False)
        return {p.key: p.value for p in proto.metadata_props}
    except ImportError:
        import onnxruntime as ort  # type: ignore[import-untyped]

        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        return dict(sess.get_modelmeta().custom_metadata_map)


class OnnxDetector:
    """An exported detector file in one runtime.

    Args:
        path: the ``.onnx`` file from ``export_onnx`` / ``export_model.py --format onnx``.
        runtime: "onnxruntime" or "openvino".
        threads: intra-op threads (None: the runtime's default).
        precision: OpenVINO ``INFERENCE_PRECISION_HINT`` ("f32", or "bf16" / "f16" for speed);
            ignored by ONNX Runtime.

    Attributes:
        iou_threshold, max_detections: the final NMS settings from the file's metadata.
        metadata: all ``metadata_props``.
    """

    def __init__(
        self,
        path: str,
        runtime: str = "onnxruntime",
        threads: int | None = None,
        precision: str = "f32",
    ):
        if runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {RUNTIMES}, got {runtime!r}")
        self.path = path
        self.runtime = runtime
        self.metadata = read_metadata(path)
        missing = [k for k in METADATA_KEYS.values() if k not in self.metadata]
        if missing:
            raise ValueError(
                f"{path}: metadata {missing} missing: not an ONNX file written by rotated_det's "
                "export_onnx (which stores the final NMS settings)"
            )
        self.iou_threshold = float(self.metadata[METADATA_KEYS["iou_threshold"]])
        self.max_detections = int(self.metadata[METADATA_KEYS["max_detections"]])
        self._run: Any
        if runtime == "onnxruntime":
            import onnxruntime as ort  # type: ignore[import-untyped]

            opts = ort.SessionOptions()
            if threads:
                opts.intra_op_num_threads = threads
                opts.inter_op_num_threads = 1
            sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
            self._run = lambda image: sess.run(["boxes", "scores", "classes"], {"image": image})
        else:
            import openvino as ov  # type: ignore[import-untyped]

            config = {"INFERENCE_PRECISION_HINT": precision}
            if threads:
                config["INFERENCE_NUM_THREADS"] = str(threads)
            compiled = ov.Core().compile_model(path, "CPU", config)
            outputs = [compiled.output(n) for n in ("boxes", "scores", "classes")]

            def run(image: np.ndarray) -> list[np.ndarray]:
                result = compiled({"image": image})
                return [np.asarray(result[o]) for o in outputs]

            self._run = run

    def pre_nms(self, image: np.ndarray) -> Arrays:
        """The file's outputs: candidates ``boxes [M, 5]``, ``scores [M]``, ``classes [M]``.

        Args:
            image: float32 ``[3, H, W]``, the model's channel order, 0-255.
        """
        image = np.ascontiguousarray(image, dtype=np.float32)
        if image.ndim != 3:
            raise ValueError(f"image must be [3, H, W], got shape {image.shape}")
        boxes, scores, classes = self._run(image)
        return (
            np.asarray(boxes, np.float32).reshape(-1, 5),
            np.asarray(scores, np.float32).reshape(-1),
            np.asarray(classes).reshape(-1).astype(np.int64),
        )

    def __call__(self, image: np.ndarray) -> Arrays:
        """Detections ``boxes [N, 5]``, ``scores [N]``, ``classes [N]`` by decreasing score."""
        return postprocess(*self.pre_nms(image), self.iou_threshold, self.max_detections)
