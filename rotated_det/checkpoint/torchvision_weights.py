"""``torchvision://`` checkpoint names, resolved through torchvision's weights API.

``torchvision://resnet50`` names the default weights of ``torchvision.models.resnet50``
(``get_model_weights("resnet50").DEFAULT``, today ``IMAGENET1K_V2``);
``torchvision://ResNet50_Weights.IMAGENET1K_V1`` names one entry of the enum. The file is the one
torchvision itself downloads, in the torch.hub cache (``$TORCH_HOME/hub/checkpoints/<file name of
the URL>``, e.g. ``~/.cache/torch/hub/checkpoints/resnet50-11ad3fa6.pth``): used if present,
downloaded otherwise; without network, the error says where to put the file.

Importing this module registers the handler with :data:`rotated_det.utils.file_io.PathManager`, so
``train.init_checkpoint=torchvision://resnet50`` works wherever a checkpoint path is accepted.
"""

import logging
import os
from typing import Any
from urllib.parse import urlparse

import torch
from iopath.common.file_io import PathHandler

from rotated_det.utils.file_io import PathManager

__all__ = ["TorchvisionWeightsHandler", "cached_file", "resolve_torchvision_weights"]

logger = logging.getLogger(__name__)

PREFIX = "torchvision://"


def _weights_entry(name: str) -> Any:
    """The torchvision WeightsEnum member a ``torchvision://`` name stands for."""
    from torchvision.models import get_model_weights, get_weight, list_models

    try:
        if "." in name:
            return get_weight(name)
        return get_model_weights(name).DEFAULT
    except (KeyError, ValueError, AttributeError) as e:
        examples = ", ".join(m for m in list_models() if m.startswith("resn"))
        raise ValueError(
            f"{PREFIX}{name}: torchvision has no such weights ({e!r}). Use a model name "
            f"({examples}, ...) for its default weights, or '<Enum>.<entry>' such as "
            "ResNet50_Weights.IMAGENET1K_V1."
        ) from None


def cached_file(url: str) -> str:
    """Where torchvision keeps the file of ``url``: the torch.hub cache's ``checkpoints/``."""
    return os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(urlparse(url).path))


def resolve_torchvision_weights(path: str) -> str:
    """The local file of a ``torchvision://`` name, downloading it into the torch.hub cache if
    it is not there.

    Raises:
        ValueError: torchvision has no weights of that name.
        FileNotFoundError: not cached and the download failed; the message gives the URL and the
            path where the file is expected.
    """
    name = path[len(PREFIX) :]
    entry = _weights_entry(name)
    url = entry.url
    local = cached_file(url)
    if os.path.isfile(local):
        return local
    os.makedirs(os.path.dirname(local), exist_ok=True)
    match = torch.hub.HASH_REGEX.search(os.path.basename(local))
    logger.info("Downloading %s (%s) to %s", path, entry, local)
    try:
        torch.hub.download_url_to_file(url, local, hash_prefix=match.group(1) if match else None)
    except Exception as e:  # no network, proxy, interrupted, hash mismatch
        raise FileNotFoundError(
            f"{path} ({entry}): the file is not in the torch.hub cache and downloading {url} "
            f"failed ({type(e).__name__}: {e}). Download it where the network allows and put it "
            f"at {local} (the torch.hub cache, $TORCH_HOME/hub/checkpoints, under the file name "
            f"{os.path.basename(local)})."
        ) from e
    return local


class TorchvisionWeightsHandler(PathHandler):
    """PathManager handler of ``torchvision://<model>`` and ``torchvision://<Enum>.<entry>``."""

    def _get_supported_prefixes(self) -> list[str]:
        return [PREFIX]

    def _get_local_path(self, path: str, **kwargs: Any) -> str:
        return resolve_torchvision_weights(path)

    def _open(self, path: str, mode: str = "r", buffering: int = -1, **kwargs: Any):
        return PathManager.open(self._get_local_path(path), mode, buffering=buffering)

    def _exists(self, path: str, **kwargs: Any) -> bool:
        try:
            _weights_entry(path[len(PREFIX) :])
        except ValueError:
            return False
        return True


if PREFIX not in PathManager._path_handlers:
    PathManager.register_handler(TorchvisionWeightsHandler())
