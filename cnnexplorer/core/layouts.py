"""Where a layer's output has its channels and positions, read from the model's structure.

Every view draws feature maps ``[N,C,H,W]`` (or vectors ``[N,C]``), which is what convolutional
layers give. torchvision's transformers lay their outputs out otherwise, and ``layout_of(root,
name).maps`` turns those into ``[N,C,H,W]``. Shapes alone cannot tell ``[N,H,W,C]`` from ``[N,C,H,W]``, so
the layout comes from these known structures (anything else is taken as it is):

* ``VisionTransformer``: every module under ``encoder`` gives tokens ``[N, 1 + h·w, C]``, the
  class token first (dropped here), then the patches row by row on the
  ``image_size // patch_size`` square grid.
* ``SwinTransformer``: every module under ``features`` and ``norm`` except convolutions (the
  stem's patch embedding) is channels-last ``[N,H,W,C]``; the model's ``permute`` turns it back.
* An ``nn.Sequential`` with torchvision ``Permute`` children (ConvNeXt's blocks, Swin's stem):
  the children from a ``Permute([0, 2, 3, 1])`` up to a ``Permute([0, 3, 1, 2])``, and their
  submodules, are channels-last.
* MaxViT's ``PartitionAttentionLayer``: the modules inside see windows ``[N, windows, pixels, C]``
  (swapped in grid attention), put back in place with the layer's own ``departition_swap`` and
  ``departition_op``.

Quantized outputs are dequantised. ``fixed_input_size`` and ``cam_layer`` say what else these
models need; ``require_gradients`` refuses quantized models where gradients are needed.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn
from torchvision.models import MaxVit, SwinTransformer, VisionTransformer
from torchvision.models.maxvit import PartitionAttentionLayer
from torchvision.ops.misc import Permute

from cnnexplorer.core.errors import UserError

TO_CHANNELS_LAST, TO_CHANNELS_FIRST = [0, 2, 3, 1], [0, 3, 1, 2]
_SWAPPED = ("partition_swap", "attn_layer", "stochastic_dropout", "mlp_layer")
_QUANTIZED = ("torch.ao.nn.quantized", "torch.ao.nn.intrinsic.quantized", "torch.nn.quantized")


@dataclass(frozen=True)
class Layout:
    """``kind``: ``maps`` (as given), ``channels-last``, ``tokens`` (on ``grid``) or ``windows``
    (of the partition layer ``owner``, ``swapped`` between its two swaps)."""

    kind: str = "maps"
    grid: tuple[int, int] | None = None
    owner: nn.Module | None = None
    swapped: bool = False

    def maps(self, tensor: Tensor) -> Tensor:
        """``tensor`` (this layout, dequantised first) as ``[N,C,H,W]``; views where possible."""
        if tensor.is_quantized:
            tensor = tensor.dequantize()
        if self.kind == "maps":
            return tensor
        shape = list(tensor.shape)
        if self.kind == "tokens":
            rows, cols = self.grid
            if tensor.ndim != 3 or shape[1] != 1 + rows * cols:
                raise UserError(f"this layer gives {shape}, not the 1 + {rows}×{cols} tokens of the model's "
                                "encoder; pick an encoder block")
            return tensor[:, 1:].reshape(shape[0], rows, cols, shape[2]).permute(0, 3, 1, 2)
        if tensor.ndim != 4:
            raise UserError(f"this layer gives {shape}, not the [N,H,W,C] maps of its stage; pick a block")
        if self.kind == "channels-last":
            return tensor.permute(*TO_CHANNELS_FIRST)
        owner = self.owner
        windows = owner.departition_swap.forward(tensor) if self.swapped else tensor
        rows, cols = (size // owner.p for size in owner.grid_size)
        return owner.departition_op.forward(windows, owner.p, rows, cols)


MAPS = Layout()


def layout_of(root: nn.Module, name: str) -> Layout:
    """The layout of the output of ``root``'s submodule ``name`` (see the module notes)."""
    parts = name.split(".") if name else []
    module = root.get_submodule(name)
    for depth, child in enumerate(parts):
        found = _rule(root.get_submodule(".".join(parts[:depth])), child, module)
        if found is not None:
            return found
    return MAPS


def _rule(parent: nn.Module, child: str, module: nn.Module) -> Layout | None:
    """The layout ``parent``'s structure gives everything under its child ``child``, if any."""
    if isinstance(parent, VisionTransformer) and child == "encoder":
        side = parent.image_size // parent.patch_size
        return Layout("tokens", (side, side))
    if isinstance(parent, SwinTransformer) and child in ("features", "norm") and not isinstance(module, nn.Conv2d):
        return Layout("channels-last")
    if isinstance(parent, PartitionAttentionLayer) and child != "departition_op":
        return Layout("windows", owner=parent, swapped=child in _SWAPPED)
    if isinstance(parent, nn.Sequential):
        last = False
        for key, sibling in parent.named_children():
            if isinstance(sibling, Permute):
                last = list(sibling.dims) == TO_CHANNELS_LAST
            if key == child:
                return Layout("channels-last") if last else None
    return None


def unknown_layout(tensor: Tensor) -> UserError:
    """The refusal for an output that is neither maps ``[N,C,H,W]`` nor a vector."""
    return UserError(f"this layer gives {list(tensor.shape)}, neither feature maps [N,C,H,W] nor a vector, and "
                     "which axis holds its channels is not known; pick a convolutional layer or a block")


def fixed_input_size(root: nn.Module) -> tuple[int, int] | None:
    """The only input size ``(H, W)`` a model runs at, or None when it takes any size.

    torchvision's ViT asserts its ``image_size``; MaxViT's partitions fit one size only, and
    its stem and first block each halve the size (3×3 stride-2 convolutions), so four times
    the first block's grid is that size.
    """
    if isinstance(root, VisionTransformer):
        return root.image_size, root.image_size
    if isinstance(root, MaxVit):
        rows, cols = root.blocks[0].grid_size
        return 4 * rows, 4 * cols
    return None


def cam_layer(root: nn.Module) -> str | None:
    """The CAM layer a model needs other than its last spatial map, or None.

    A ViT's head reads the class token only, so after the last block's attention no patch
    token matters to the target: CAM uses that block's first norm (``ln_1``), the input of
    its attention, as pytorch-grad-cam does.
    """
    if isinstance(root, VisionTransformer):
        last = list(root.encoder.layers.named_children())[-1][0]
        return f"encoder.layers.{last}.ln_1"
    return None


def require_gradients(root: nn.Module, what: str) -> None:
    """Refuse a quantized model, whose int8 layers have no gradients, for ``what``."""
    if any(type(m).__module__.startswith(_QUANTIZED) for m in root.modules()):
        raise UserError(f"this model is quantized, and its int8 layers have no gradients, so {what} cannot run "
                        "on it; load the float version of the model")

