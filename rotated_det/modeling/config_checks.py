"""Consistency checks of a model definition against itself and against dataset metadata.

``check_model_config(model, thing_classes=...)`` accepts a lazy config node (an omegaconf
DictConfig / dict with ``_target_``) or an instantiated model, so the trainer can call it before
building anything. Each problem names the config keys that disagree; all problems are reported
together in one ``ValueError``.
"""

from collections.abc import Sequence

from rotated_det.config import select

__all__ = ["check_model_config", "ModelConfigError"]


class ModelConfigError(ValueError):
    """A model definition that cannot work (keys that disagree are named in the message)."""


# Weights of the box coders that do not take 5 (rotated deltas): horizontal deltas take 4.
_CODER_WEIGHTS = {"MidpointOffsetCoder": 6, "Box2BoxTransform": 4, "GlidingVertexCoder": 4}


def _weights(coder):
    w = select(coder, "weights", throw_on_missing=False)
    return None if w is None else tuple(float(x) for x in w)


def _target_name(node) -> str:
    t = select(node, "_target_", throw_on_missing=False)
    if t is None:
        return type(node).__name__
    return t if isinstance(t, str) else getattr(t, "__name__", str(t))


def check_model_config(
    model, thing_classes: Sequence[str] | None = None, prefix: str = "model"
) -> None:
    """Raise ModelConfigError if the model's class counts or box coders are inconsistent.

    Checks:
        - ``roi_heads.num_classes``, ``roi_heads.box_predictor.num_classes``,
          ``num_classes`` and ``head.num_classes`` (RetinaNet) agree with each other and with
          ``len(thing_classes)`` when given (the dataset metadata);
        - rotated box coders have 5 weights (``*.box2box_transform.weights``), the
          midpoint-offset coder 6, the horizontal and gliding-vertex coders 4.

    Args:
        model: lazy config node or instantiated model.
        thing_classes: the dataset's class names (``MetadataCatalog.get(name).thing_classes``).
        prefix: how the model is called in messages (e.g. "model" for ``cfg.model``).
    """
    problems = []
    counts = {}
    for path in (
        ("num_classes",),
        ("head", "num_classes"),
        ("roi_heads", "num_classes"),
        ("roi_heads", "box_predictor", "num_classes"),
    ):
        node = select(model, ".".join(path), throw_on_missing=False)
        if isinstance(node, int):
            counts[".".join((prefix,) + path)] = node
    if len(set(counts.values())) > 1:
        problems.append(
            "class counts disagree: " + ", ".join(f"{k}={v}" for k, v in counts.items())
        )
    if thing_classes is not None:
        n = len(thing_classes)
        for k, v in counts.items():
            if v != n:
                problems.append(
                    f"{k}={v} but the dataset metadata has {n} thing_classes "
                    f"({', '.join(list(thing_classes)[:6])}{', ...' if n > 6 else ''})"
                )
    for path in (
        ("box2box_transform",),
        ("proposal_generator", "box2box_transform"),
        ("roi_heads", "box_predictor", "box2box_transform"),
    ):
        node = select(model, ".".join(path), throw_on_missing=False)
        weights = _weights(node)
        if weights is None:
            continue
        name = _target_name(node)
        expected = _CODER_WEIGHTS.get(name.rsplit(".", 1)[-1], 5)
        if len(weights) != expected:
            key = ".".join((prefix,) + path + ("weights",))
            hint = (
                " (a 4-weight tuple is for horizontal boxes; rotated boxes need a 5th weight "
                "for the angle)"
                if expected == 5 and len(weights) == 4
                else ""
            )
            problems.append(
                f"{key}={weights} has {len(weights)} weights but {name} needs {expected}{hint}"
            )
    if problems:
        raise ModelConfigError("Model config is inconsistent:\n  - " + "\n  - ".join(problems))
