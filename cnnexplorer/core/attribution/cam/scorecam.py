"""Score-CAM (Wang et al. 2020): each channel weighted by the target score of the input masked
with that channel's upsampled, min–max normalised activation; no gradients. The masked inputs
run in batches and the weights are the softmax of those scores over the channels."""

from __future__ import annotations

import torch
from torch import Tensor

from cnnexplorer.core.attribution.cam.base import CAM, LayerPass, upsample
from cnnexplorer.core.attribution.passes import batches
from cnnexplorer.core.jobs import Job, Progress
from cnnexplorer.core.model_handle import ModelHandle, eval_mode


class ScoreCAM(CAM):
    name = "scorecam"
    title = "Score-CAM"
    uses_gradients = False

    def weights_job(self, handle: ModelHandle, pixels: Tensor, recorded: LayerPass, batch: int = 32) -> Job[Tensor]:
        count, channels = recorded.activations.shape[:2]
        scores = torch.zeros(count, channels, device=pixels.device)
        model = handle.pixel_model()
        with torch.no_grad(), eval_mode(handle.module):
            for image in range(count):
                masks = upsample(recorded.activations[image:image + 1], tuple(pixels.shape[-2:]))[0]
                low = masks.amin(dim=(1, 2), keepdim=True)
                span = masks.amax(dim=(1, 2), keepdim=True) - low
                masks = torch.where(span > 0, (masks - low) / torch.where(span > 0, span, 1.0), 0.0)
                owners = torch.full((channels,), image)
                for part in batches(channels, batch):
                    yield Progress(image * channels + part.start, count * channels, self.title)
                    masked = pixels[image] * masks[part, None]
                    scores[image, part] = recorded.targets.scores(model(masked), owners[part])
        return torch.softmax(scores, dim=1)[:, :, None, None]
