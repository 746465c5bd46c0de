"""How faithful a heatmap is, measured: deletion and insertion (RISE), ROAD with noisy linear
imputation, the pointing game against user boxes, each against a random-map baseline, over one
image or a whole probe set, batched (``run``). The model-randomisation sanity check lives in
``core/attribution/sanity.py``; ``pictures/sanity.py`` draws it.
"""

from cnnexplorer.core.faithfulness.boxes import read_boxes
from cnnexplorer.core.faithfulness.imputation import linear_imputation, noisy_linear_imputation
from cnnexplorer.core.faithfulness.perturb import deletion_job, road_job
from cnnexplorer.core.faithfulness.run import BETTER, METRICS, RANDOM, Table, dataset_job, image_job, score_batch

__all__ = ["BETTER", "METRICS", "RANDOM", "Table", "dataset_job", "deletion_job", "image_job", "linear_imputation",
           "noisy_linear_imputation", "read_boxes", "road_job", "score_batch"]
