"""Why two images are close: a heat map over each image of the regions that make their embeddings similar.

The method is Grad-CAM (Selvaraju et al. 2017) with a similarity target, computed with the run's own embedder:
the feature map is the input of the backbone's global average pool (the last convolutional block), and the target
for image A is s_A = z_A . u_B, A's embedding before L2 normalisation against B's unit embedding (then the same
with A and B swapped). Because the embedder pools and then applies one linear layer, the gradient is the same at
every location, and Grad-CAM's map before its ReLU is each location's exact share of s_A (the decomposition of
Stylianou et al. 2019, "Visualizing deep similarity networks"); `similarity_maps` keeps that sum for tests.

It is written here rather than taken from the grad-cam package: that package's similarity target lives in a
tutorial, it brings OpenCV with it, and its cosine target has zero gradient when an image meets itself.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from skinsim.data.images import to_array
from skinsim.model.transforms import normalise

METHOD = ("Grad-CAM with a similarity target (Selvaraju et al. 2017): the gradient of one image's embedding "
          "(before normalisation) dotted with the other's unit embedding, on the last convolutional block, "
          "upsampled to the image. Red: regions that pull the two images together.")


@dataclass(frozen=True)
class SimilarityMaps:
    """Heat maps (height, width) in [0, 1] over the query and the neighbour as the model sees them."""

    query: np.ndarray
    neighbour: np.ndarray
    cosine: float  # cosine similarity of the two embeddings (one view each, no flip averaging)
    query_share_sum: float  # sum of the query map before ReLU and scaling: s_A less the linear layer's bias term
    query_target: float  # s_A - b . u_B, which query_share_sum equals up to rounding
    method: str = METHOD


def _pool_module(model: nn.Module) -> nn.AdaptiveAvgPool2d:
    for module in model.stages[-1].modules():
        if isinstance(module, nn.AdaptiveAvgPool2d):
            return module
    raise ValueError("the embedder's last stage has no global average pool, so there is no feature map to explain")


def _features(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(last feature map (1, c, h, w), embedding before normalisation (1, em)) of one normalised image."""
    captured: dict[str, torch.Tensor] = {}
    hooks = [_pool_module(model).register_forward_hook(lambda m, inp, out: captured.__setitem__("map", inp[0])),
             model.fc.register_forward_hook(lambda m, inp, out: captured.__setitem__("z", out))]
    try:
        # requiring a gradient at the input keeps the graph even when every weight is frozen
        model(x.detach().requires_grad_(True))
    finally:
        for hook in hooks:
            hook.remove()
    return captured["map"], captured["z"]


def _cam(feature_map: torch.Tensor, target: torch.Tensor, size: tuple[int, int]) -> tuple[np.ndarray, float]:
    """Grad-CAM of `target` on `feature_map`, upsampled to `size` and scaled to [0, 1]; and the pre-ReLU sum."""
    (grad,) = torch.autograd.grad(target, feature_map)
    weights = grad.mean(dim=(2, 3), keepdim=True)
    # with pooling then a linear layer, location (i, j)'s term is exactly its share of the target less the bias
    share = (weights * feature_map).sum(1, keepdim=True)
    share_sum = float(share.detach().sum())
    cam = F.interpolate(F.relu(share.detach()), size=size, mode="bilinear", align_corners=False)[0, 0]
    top = float(cam.max())
    cam = cam / top if top > 0 else cam
    return cam.detach().cpu().numpy().astype(np.float32), share_sum


def prepare(image: Image.Image | np.ndarray, size: tuple[int, int], mean: tuple, std: tuple) -> torch.Tensor:
    """A PIL image or uint8 (h, w, 3) array -> a normalised (1, 3, h, w) tensor at `size` = (height, width)."""
    array = to_array(image, size) if isinstance(image, Image.Image) else image
    array = np.array(array, dtype=np.uint8)  # a writable copy: torch refuses to wrap read-only memory
    return normalise(array[None], mean, std)


def similarity_maps(model: nn.Module, query: torch.Tensor, neighbour: torch.Tensor) -> SimilarityMaps:
    """Heat maps of why `query` and `neighbour` (normalised (1, 3, h, w) images) are close in `model`'s space."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            map_q, z_q = _features(model, query.to(device))
            map_n, z_n = _features(model, neighbour.to(device))
            u_q, u_n = (F.normalize(z, dim=1).detach() for z in (z_q, z_n))
            w_n, w_q = u_n, u_q  # target_q = z_q . w_n, target_n = z_n . w_q
            target_q, target_n = (z_q * w_n).sum(), (z_n * w_q).sum()
            cam_q, share_q = _cam(map_q, target_q, tuple(query.shape[2:]))
            cam_n, _ = _cam(map_n, target_n, tuple(neighbour.shape[2:]))
    finally:
        model.train(was_training)
    bias_term = float((model.fc.bias.detach() * w_n[0]).sum()) if model.fc.bias is not None else 0.0
    return SimilarityMaps(query=cam_q, neighbour=cam_n, cosine=float((u_q * u_n).sum()),
                          query_share_sum=share_q, query_target=float(target_q.detach()) - bias_term)
