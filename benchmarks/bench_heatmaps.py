"""Heatmap latency against the passes it cannot avoid, side by side in one process.

resnet50 at 224 (random init), one image, eval mode:
- gradcam_over_forward: ``compute_heatmap(…, "gradcam")`` ÷ a plain no-grad forward (goal ≤ 1.15);
- saliency_over_fwdbwd: ``compute_heatmap(…, "saliency")`` ÷ one forward + backward to the input
  (goal ≤ 1.1);
- pytorch-grad-cam's GradCAM and captum's LayerGradCam ÷ the same forward, when installed.
Score-CAM batched vs one mask at a time runs on the built-in shapes net (96 channels at 64 px):
on resnet50 it needs 2048 forward passes at 224 px, minutes on a CPU.
Median of repeats after a warm-up. The last line is JSON.
"""

from __future__ import annotations

import json
import statistics
import time
import warnings

import cnnexplorer  # noqa: F401 - sets the OpenMP wait policy before torch loads
import torch
import torchvision

from cnnexplorer.core.attribution import compute_heatmap
from cnnexplorer.core.model_handle import ModelHandle, Preprocessing
from cnnexplorer.core.models import load_model

REPEATS = 7


def median_times(fns: dict, repeats: int = REPEATS) -> dict[str, float]:
    """Median seconds of each function, run in turn in every round (after one warm-up round),
    so that a change in the machine's load hits all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for round_number in range(repeats + 1):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            if round_number:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> dict:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    model = torchvision.models.resnet50(weights=None).eval().to(device)
    pre = Preprocessing(3, (224, 224), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    handle = ModelHandle("torchvision:resnet50:none", model, device, pre, [str(i) for i in range(1000)], "none", False)
    pixels = torch.rand(1, 3, 224, 224, device=device)
    pixel_model = handle.pixel_model()

    def forward():
        with torch.no_grad():
            pixel_model(pixels)

    def forward_backward():
        x = pixels.clone().requires_grad_(True)
        torch.autograd.grad(pixel_model(x)[0, 1], x)

    fns = {"forward": forward, "forward_backward": forward_backward,
           "gradcam": lambda: compute_heatmap(handle, pixels, "gradcam", target=1),
           "saliency": lambda: compute_heatmap(handle, pixels, "saliency", target=1)}
    try:
        from pytorch_grad_cam import GradCAM
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        cam = GradCAM(model=pixel_model, target_layers=[model.layer4])
        fns["pytorch_grad_cam"] = lambda: cam(input_tensor=pixels, targets=[ClassifierOutputTarget(1)])
    except ImportError:
        cam = None
    try:
        from captum.attr import LayerGradCam

        layer_cam = LayerGradCam(pixel_model, model.layer4)
        fns["captum_gradcam"] = lambda: layer_cam.attribute(pixels, target=1)
    except ImportError:
        pass
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        seconds = median_times(fns)
    if cam is not None:
        cam.activations_and_grads.release()
    fwd = seconds["forward"]
    results: dict[str, float | str | None] = {"device": str(device), "threads": torch.get_num_threads()}
    results.update({f"{name}_ms": 1000 * value for name, value in seconds.items()})
    results.update(gradcam_over_forward=seconds["gradcam"] / fwd,
                   saliency_over_fwdbwd=seconds["saliency"] / seconds["forward_backward"],
                   pytorch_grad_cam_over_forward=seconds["pytorch_grad_cam"] / fwd if "pytorch_grad_cam" in seconds
                   else None,
                   captum_gradcam_over_forward=seconds["captum_gradcam"] / fwd if "captum_gradcam" in seconds
                   else None)

    shapes = load_model("builtin:shapes", device)
    image = torch.rand(1, 3, 64, 64, device=device)
    score = median_times({"batched": lambda: compute_heatmap(shapes, image, "scorecam", target=0, batch=96),
                          "single": lambda: compute_heatmap(shapes, image, "scorecam", target=0, batch=1)}, 3)
    batched, single = score["batched"], score["single"]
    results.update(scorecam_batched_ms=1000 * batched, scorecam_one_at_a_time_ms=1000 * single,
                   scorecam_batched_speedup=single / batched)
    return results


if __name__ == "__main__":
    figures = main()
    for key, value in figures.items():
        print(f"{key:32s} {value:.3f}" if isinstance(value, float) else f"{key:32s} {value}")
    print(json.dumps(figures))
