"""The dataset index equals a brute-force pass, resumes after a cancel or a kill, and is reused from its cache;
a damaged cache file is made again, and a cache that cannot be written fails before the pass."""

from __future__ import annotations

import functools
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from cnnexplorer.core.activations.recording import capture
from cnnexplorer.core.dataset.cache import partial_path
from cnnexplorer.core.dataset import index as index_module
from cnnexplorer.core.dataset.index import CacheHit, IndexNote, default_layers, index_job
from cnnexplorer.core.dataset.index_types import THUMBNAIL
from cnnexplorer.core.dataset.layer_group import LayerGroup
from cnnexplorer.core.dataset.layer_stats import BINS, LayerAccumulator, sample_positions, summarise
from cnnexplorer.core.dataset.probe import open_probe_set
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.jobs import Progress, drive
from tests.core.test_probe_sets import labelled_folder, tiny_handle, write_image

LAYERS = ["conv1", "conv2", "fc"]


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    return open_probe_set(str(labelled_folder(tmp_path_factory.mktemp("probe") / "set", per_class=7)))


def run(job):
    items = []
    return drive(job, items.append), items


def brute_force(handle, probe, k):
    """Every image alone through the model, recorded by ``capture``; per channel the top-k by spatial maximum."""
    maps = {name: [] for name in LAYERS}
    logits = []
    for i in range(len(probe)):
        pixels = handle.preprocessing.to_tensor(probe.image(i))
        recorded = capture(handle, pixels, [*LAYERS, "flatten"])
        for name in LAYERS:
            maps[name].append(recorded.output(name)[0])
        logits.append(recorded.output("fc")[0])
    expected = {}
    for name, per_image in maps.items():
        stack = torch.stack(per_image)  # [n, C, H, W] or [n, C]
        flat = stack.reshape(len(probe), stack.shape[1], -1)
        peak, where = flat.max(2)
        tops = []
        for c in range(stack.shape[1]):
            order = sorted(range(len(probe)), key=lambda i: (-float(peak[i, c]), i))[:k]  # ties: lower image first
            tops.append([(i, float(peak[i, c]), int(where[i, c])) for i in order])
        expected[name] = (stack, tops)
    return expected, torch.stack(logits)


def sampled(stack: torch.Tensor) -> np.ndarray:
    """The values the histogram counts, as the layer_stats notes define them: [C, samples]."""
    if stack.ndim == 2:
        return stack.T.numpy()
    rows, cols = sample_positions(stack.shape[2]), sample_positions(stack.shape[3])
    part = stack[:, :, rows[:, None], cols[None, :]]
    return part.permute(1, 0, 2, 3).reshape(stack.shape[1], -1).numpy()


@pytest.mark.parametrize("fixed_size", [False, True])
@pytest.mark.parametrize("batch_size", [1, 3, 4, 6, 14])
def test_index_equals_a_brute_force_pass(probe, tmp_path, batch_size, fixed_size, monkeypatch):
    """Batches smaller than k (every peak above the record's k-th value a candidate), of at least k (the batch's
    own k-th value filters too) and the whole set in one; with the candidates chosen the CPU's way and a GPU's."""
    monkeypatch.setattr(index_module, "summarise", functools.partial(summarise, fixed_size=fixed_size))
    handle, k = tiny_handle(), 5
    index, _ = run(index_job(handle, probe, LAYERS, top_k=k, batch_size=batch_size, cache_dir=tmp_path))
    expected, logits = brute_force(handle, probe, k)
    assert index.count == len(probe) == 14 and list(index.layers) == LAYERS
    for name, (stack, tops) in expected.items():
        layer = index.layers[name]
        width = stack.shape[3] if stack.ndim == 4 else 1
        assert layer.map_size == (tuple(stack.shape[2:]) if stack.ndim == 4 else None)
        assert layer.top_images.tolist() == [[i for i, _, _ in top] for top in tops]
        np.testing.assert_allclose(layer.top_values, [[v for _, v, _ in top] for top in tops], rtol=1e-5, atol=1e-6)
        assert layer.top_y.tolist() == [[w // width for _, _, w in top] for top in tops]
        assert layer.top_x.tolist() == [[w % width for _, _, w in top] for top in tops]
        values = stack.transpose(0, 1).reshape(stack.shape[1], -1).double()
        np.testing.assert_allclose(layer.mean, values.mean(1).numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(layer.maximum, values.amax(1).numpy(), rtol=1e-6)
        sample = sampled(stack)
        np.testing.assert_array_equal(layer.zeros, (sample == 0).mean(1))
        low, scale = np.float32(layer.hist_edges[0]), np.float32(BINS / (layer.hist_edges[-1] - layer.hist_edges[0]))
        bins = np.clip(np.floor((sample.astype(np.float32) - low) * scale), 0, BINS - 1).astype(int)
        counts = np.stack([np.bincount(row, minlength=BINS) for row in bins])
        assert (layer.hist_counts.sum(1) == sample.shape[1]).all()
        np.testing.assert_array_equal(layer.hist_counts, counts)
    probs = torch.softmax(logits, 1)
    assert index.top5.tolist() == probs.argsort(1, descending=True)[:, :3].tolist()
    np.testing.assert_allclose(index.top5_probs, probs.sort(1, descending=True).values[:, :3].numpy(), rtol=1e-5)
    assert set(index.features) == {"flatten", "fc"}  # the penultimate layer (the input of fc) and the last layer
    pooled = torch.stack([capture(handle, handle.preprocessing.to_tensor(probe.image(i)), ["conv2"]).output("conv2")[0]
                          for i in range(len(probe))]).mean((2, 3))
    np.testing.assert_allclose(index.features["flatten"], pooled.numpy(), rtol=1e-5, atol=1e-6)
    assert index.labels.tolist() == [0] * 7 + [1] * 7 and index.label_names == ["cat", "dog"]
    assert index.thumbnails.shape == (14, THUMBNAIL, THUMBNAIL, 3) and index.thumbnails.dtype == np.uint8
    assert index.sources == [probe.source(i) for i in range(14)]


def tied_maps(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """Maps of a few whole values, so most peaks tie with others, and two whole images alike."""
    maps = torch.from_numpy(np.random.default_rng(seed).integers(0, 3, shape).astype(np.float32))
    maps[7] = maps[2]
    return maps


def assert_top_k(record, maps: torch.Tensor, images: list[int], k: int) -> None:
    """``record`` holds each channel's top-k of ``images`` (rows of ``maps``) by peak, lower image first among
    equals, each at its first maximum in row-major order."""
    flat = maps.reshape(maps.shape[0], maps.shape[1], -1).numpy()
    width = maps.shape[3] if maps.ndim == 4 else 1
    for c in range(maps.shape[1]):
        peaks = flat[:, c].max(1)
        order = sorted(images, key=lambda i: (-peaks[i], i))[:k]
        first_max = [int(np.argmax(flat[i, c])) for i in order]  # numpy's argmax: the first
        assert record.top_images[c].tolist() == order
        assert record.top_values[c].tolist() == peaks[order].tolist()
        assert record.top_y[c].tolist() == [p // width for p in first_max]
        assert record.top_x[c].tolist() == [p % width for p in first_max]
        assert record.maximum[c] == peaks[images].max()


@pytest.mark.parametrize("fixed_size", [False, True])
@pytest.mark.parametrize("shape", [(23, 4, 3, 5), (23, 4)])
@pytest.mark.parametrize("batch_size", [1, 2, 5, 9, 23])
def test_ties_rank_by_image_and_position_whatever_the_batches(shape, batch_size, fixed_size):
    """Ties everywhere, in batches and across them; whether the candidates are chosen by the record's threshold
    (the CPU's way) or are each batch's own top-k (a GPU's, here on the CPU)."""
    k, maps = 6, tied_maps(shape, batch_size)
    accumulator = LayerAccumulator("layer", shape[1], shape[2:] or None, k)
    group = LayerGroup([accumulator])
    for first in range(0, shape[0], batch_size):
        group.add(first, [summarise(maps[first:first + batch_size], accumulator, fixed_size)])
    assert_top_k(accumulator.result(), maps, list(range(shape[0])), k)


@pytest.mark.parametrize("fixed_size", [False, True])
@pytest.mark.parametrize("batch_size", [1, 4, 9])
def test_layers_merged_together_keep_their_own_records(batch_size, fixed_size):
    """Three layers of different sizes (two map widths and a vector) merged as one group: each layer's record is
    its own top-k, at positions in its own map's width, also when a batch does not reach a layer."""
    k, shapes = 5, [(23, 4, 3, 5), (23, 6, 2, 7), (23, 5)]
    maps = [tied_maps(shape, seed) for seed, shape in enumerate(shapes)]
    layers = [LayerAccumulator(f"layer{n}", shape[1], shape[2:] or None, k) for n, shape in enumerate(shapes)]
    group = LayerGroup(layers)
    reached = [[], [], []]
    for number, first in enumerate(range(0, 23, batch_size)):
        batch = range(first, min(first + batch_size, 23))
        summaries = []
        for n, (layer, layer_maps) in enumerate(zip(layers, maps)):
            skipped = n == 1 and number % 3 == 1  # the middle layer misses every third batch
            summaries.append(None if skipped else summarise(layer_maps[first:batch.stop], layer, fixed_size))
            reached[n] += [] if skipped else list(batch)
        group.add(first, summaries)
    assert len(reached[1]) < 23
    for layer, layer_maps, images in zip(layers, maps, reached):
        assert_top_k(layer.result(), layer_maps, images, k)
        np.testing.assert_array_equal(layer.threshold.numpy(), layer.top_values[:, -1])


def test_default_layers_are_every_conv_and_linear():
    assert default_layers(tiny_handle()) == ["conv1", "conv2", "fc"]


def test_model_state_and_hooks_are_restored(probe, tmp_path):
    handle = tiny_handle()
    handle.module.train()
    job = index_job(handle, probe, batch_size=4, cache_dir=tmp_path)
    next(job), next(job)
    job.close()
    assert handle.module.training and all(m.training for m in handle.module.modules())
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in handle.module.modules())


def test_cancelled_at_random_moments_resumes_to_the_same_index(probe, tmp_path):
    handle = tiny_handle()
    whole, _ = run(index_job(handle, probe, batch_size=2, cache_dir=tmp_path / "whole"))
    rng = random.Random(16)
    cache = tmp_path / "stopped"
    for _ in range(3):  # 7 batches: three stops after one or two items each never reach the end
        job = index_job(handle, probe, batch_size=2, cache_dir=cache, save_every=1e9)  # saved only when closed
        for _ in range(rng.randint(1, 2)):
            next(job)
        job.close()
    resumed, items = run(index_job(handle, probe, batch_size=2, cache_dir=cache))
    notes = [item.text for item in items if isinstance(item, IndexNote)]
    first = next(item for item in items if isinstance(item, Progress))
    assert any(text.startswith("resumed at image ") for text in notes) and first.done > 2
    assert_same_index(resumed, whole)
    assert not partial_path(cache, resumed.key).exists()


def test_a_finished_index_is_reused_without_a_model_pass(probe, tmp_path):
    handle = tiny_handle()
    first, _ = run(index_job(handle, probe, batch_size=8, cache_dir=tmp_path))
    again, items = run(index_job(handle, probe, batch_size=8, cache_dir=tmp_path))
    assert [type(item) for item in items] == [CacheHit] and not any(isinstance(i, Progress) for i in items)
    assert_same_index(again, first)
    other, items = run(index_job(tiny_handle(seed=1), probe, batch_size=8, cache_dir=tmp_path))  # other weights
    assert other.key != first.key and any(isinstance(item, Progress) for item in items)


def test_one_image_set_and_unused_top_k_slots(tmp_path):
    write_image(tmp_path / "one" / "only.png", 7, mode="L")
    index, _ = run(index_job(tiny_handle(), open_probe_set(str(tmp_path / "one")), top_k=3, cache_dir=tmp_path / "c"))
    layer = index.layers["conv1"]
    assert index.count == 1 and index.labels.tolist() == [-1] and index.label_names is None
    assert (layer.top_images[:, 0] == 0).all() and (layer.top_images[:, 1:] == -1).all()
    assert np.isneginf(layer.top_values[:, 1:]).all()


def test_killed_process_resumes(probe, tmp_path):
    """A pass killed with SIGKILL after it saved its state continues from that state."""
    script = (
        "import sys, time\n"
        "from cnnexplorer.core.dataset.index import index_job\n"
        "from cnnexplorer.core.dataset.probe import open_probe_set\n"
        "from tests.core.test_probe_sets import tiny_handle\n"
        "job = index_job(tiny_handle(), open_probe_set(sys.argv[1]), batch_size=2, cache_dir=sys.argv[2], save_every=0)\n"
        "for item in job:\n"
        "    time.sleep(0.2)\n"
    )
    cache = tmp_path / "killed"
    source = probe.source(0).rsplit("/cat/", 1)[0]
    process = subprocess.Popen([sys.executable, "-c", script, source, str(cache)], cwd=Path(__file__).parents[2],
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 60
        while not list(cache.glob("*.partial.npz")) and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        time.sleep(0.3)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert list(cache.glob("*.partial.npz")), "the killed pass saved no state"
    resumed, items = run(index_job(tiny_handle(), probe, batch_size=2, cache_dir=cache))
    assert any(isinstance(i, IndexNote) and i.text.startswith("resumed at image ") for i in items)
    whole, _ = run(index_job(tiny_handle(), probe, batch_size=2, cache_dir=tmp_path / "whole"))
    assert_same_index(resumed, whole)


def assert_same_index(a, b):
    assert a.key == b.key and a.count == b.count and list(a.layers) == list(b.layers)
    for name in a.layers:
        for field in ("top_values", "top_images", "top_y", "top_x", "mean", "maximum", "zeros", "hist_edges",
                      "hist_counts"):
            np.testing.assert_array_equal(getattr(a.layers[name], field), getattr(b.layers[name], field), err_msg=field)
    assert list(a.features) == list(b.features)
    for name in a.features:
        np.testing.assert_array_equal(a.features[name], b.features[name])
    for field in ("labels", "top5", "top5_probs", "thumbnails"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert a.sources == b.sources and a.skipped == b.skipped


def test_an_index_made_while_interventions_are_on_is_kept_apart(probe, tmp_path):
    """Edits are hooks on the model, not weights: the cache key names them, so the edited model's index is
    neither read for the plain model nor the other way round."""
    from cnnexplorer.core.interventions import applied, parse_edits

    handle = tiny_handle()
    plain, _ = run(index_job(handle, probe, ["conv2"], batch_size=7, cache_dir=tmp_path))
    with applied(handle.module, parse_edits(["conv1:0-2"])):
        edited, items = run(index_job(handle, probe, ["conv2"], batch_size=7, cache_dir=tmp_path))
    assert not any(isinstance(item, CacheHit) for item in items) and edited.key != plain.key
    assert not np.array_equal(edited.layers["conv2"].top_values, plain.layers["conv2"].top_values)
    again, items = run(index_job(handle, probe, ["conv2"], batch_size=7, cache_dir=tmp_path))
    assert any(isinstance(item, CacheHit) for item in items) and again.key == plain.key


class VectorNet(torch.nn.Module):
    """A linear layer whose output an in-place ReLU overwrites, as in AlexNet's and VGG's classifiers."""

    def __init__(self):
        super().__init__()
        self.flatten = torch.nn.Flatten()
        self.hidden = torch.nn.Linear(3 * 12 * 12, 6)
        self.relu = torch.nn.ReLU(inplace=True)
        self.fc = torch.nn.Linear(6, 3)

    def forward(self, x):
        return self.fc(self.relu(self.hidden(self.flatten(x))))


def test_a_vector_overwritten_in_place_is_recorded_as_the_layer_gave_it(probe, tmp_path):
    """The statistics and features of ``hidden`` are its own values, negative ones too, not the ReLU's after it."""
    torch.manual_seed(0)
    handle = tiny_handle()
    handle.module = VectorNet().eval()
    index, _ = run(index_job(handle, probe, ["hidden"], batch_size=4, feature_layers=["hidden"], cache_dir=tmp_path))
    hidden = torch.cat([capture(handle, handle.preprocessing.to_tensor(probe.image(i)), ["hidden"]).output("hidden")
                        for i in range(len(probe))])
    assert (hidden < 0).any()
    layer = index.layers["hidden"]
    np.testing.assert_array_equal(layer.zeros, (hidden == 0).float().mean(0).numpy())
    np.testing.assert_allclose(layer.mean, hidden.double().mean(0).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(index.features["hidden"], hidden.numpy(), rtol=1e-5, atol=1e-6)
    low, scale = np.float32(layer.hist_edges[0]), np.float32(BINS / (layer.hist_edges[-1] - layer.hist_edges[0]))
    bins = np.clip(np.floor((hidden.T.numpy() - low) * scale), 0, BINS - 1).astype(int)
    np.testing.assert_array_equal(layer.hist_counts, np.stack([np.bincount(row, minlength=BINS) for row in bins]))


def test_a_damaged_cache_file_is_reported_removed_and_made_again(probe, tmp_path):
    from cnnexplorer.core.dataset import cache as cache_module

    handle = tiny_handle()
    whole, _ = run(index_job(handle, probe, batch_size=4, cache_dir=tmp_path / "whole"))
    finished = cache_module.finished_path(tmp_path / "whole", whole.key)
    meta, arrays = cache_module.read_state(finished, whole.key)
    narrow = {**arrays, "layer0.top_values": arrays["layer0.top_values"][:, :3]}  # well-formed, wrong shape
    damages = {"garbage": lambda path: path.write_bytes(os.urandom(4096)),
               "empty": lambda path: path.write_bytes(b""),
               "no top-5": lambda path: cache_module.write_state(path, meta, {k: v for k, v in arrays.items()
                                                                              if k != "top5"}),
               "narrow top-k": lambda path: cache_module.write_state(path, meta, narrow),
               "no sums": lambda path: cache_module.write_state(path, meta, {k: v for k, v in arrays.items()
                                                                             if k != "layer0.sums"}),
               "no notes": lambda path: cache_module.write_state(path, {k: v for k, v in meta.items() if k != "notes"},
                                                                 arrays),
               "meta a list": lambda path: cache_module.write_state(path, [meta], arrays)}
    for name, damage in damages.items():
        folder = tmp_path / name
        folder.mkdir()
        damage(cache_module.finished_path(folder, whole.key))
        again, items = run(index_job(handle, probe, batch_size=4, cache_dir=folder))
        notes = [item.text for item in items if isinstance(item, IndexNote)]
        assert any(f"the cached index {whole.key}.npz could not be read" in text and "made again" in text
                   for text in notes), (name, notes)
        assert not any(isinstance(item, CacheHit) for item in items) and any(isinstance(i, Progress) for i in items)
        assert_same_index(again, whole)
        assert cache_module.read_state(cache_module.finished_path(folder, whole.key), whole.key) is not None
    partial = partial_path(tmp_path / "damaged progress", whole.key)
    partial.parent.mkdir()
    cache_module.write_state(partial, {**meta, "done": 4, "part": [0, meta["count"]]}, arrays)  # sizes don't match
    again, items = run(index_job(handle, probe, batch_size=4, cache_dir=partial.parent))
    assert any("the saved progress" in item.text and "could not be read" in item.text for item in items
               if isinstance(item, IndexNote))
    assert not any(isinstance(i, IndexNote) and i.text.startswith("resumed") for i in items)
    assert_same_index(again, whole)
    assert not partial.exists()


def test_the_batch_size_is_part_of_the_key(probe, tmp_path):
    two, _ = run(index_job(tiny_handle(), probe, batch_size=2, cache_dir=tmp_path))
    four, items = run(index_job(tiny_handle(), probe, batch_size=4, cache_dir=tmp_path))
    assert two.key != four.key and not any(isinstance(item, CacheHit) for item in items)
    assert len(list(tmp_path.glob("*.npz"))) == 2


def test_a_cache_that_cannot_be_written_fails_before_the_pass(probe, tmp_path):
    (tmp_path / "a file").write_text("not a folder")
    items = []
    with pytest.raises(UserError, match="which is a file, not a folder"):
        drive(index_job(tiny_handle(), probe, batch_size=2, cache_dir=tmp_path / "a file" / "index"), items.append)
    assert not any(isinstance(item, Progress) for item in items)


def test_a_save_that_fails_during_the_pass_is_reported_and_the_pass_goes_on(probe, tmp_path, monkeypatch):
    from cnnexplorer.core.dataset import cache as cache_module

    write_state = cache_module.write_state

    def full_disk(path, meta, arrays):
        if path.name.endswith(".partial.npz"):
            raise UserError(f"cannot write {path}: No space left on device; free some space or choose another folder")
        write_state(path, meta, arrays)

    monkeypatch.setattr(cache_module, "write_state", full_disk)
    index, items = run(index_job(tiny_handle(), probe, batch_size=2, cache_dir=tmp_path, save_every=0))
    notes = [item.text for item in items if isinstance(item, IndexNote)]
    assert len(notes) == 1 and notes[0].startswith("could not save the progress so far (cannot write")
    assert index.count == len(probe) and (tmp_path / f"{index.key}.npz").exists()
