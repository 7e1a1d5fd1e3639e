"""Fashion-MNIST from the bundled files, .npz arrays, preprocessing, the on-device dataset."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.config import DataConfig
from engine.data.dataset import DeviceDataset
from engine.data.fashion_mnist import load_fashion_mnist
from engine.data.sources import load_data
from engine.errors import UserError


def test_bundled_fashion_mnist_loads_both_splits_with_labels():
    train, labels = load_fashion_mnist("train")
    test, test_labels = load_fashion_mnist("test")
    assert train.shape == (60000, 28, 28) and test.shape == (10000, 28, 28) and train.dtype == np.uint8
    assert set(np.unique(labels)) == set(range(10)) and len(test_labels) == 10000


def test_fashion_mnist_resized_to_rgb_32():
    data = load_data(DataConfig("fashion-mnist", size=32, channels=3))
    assert data.images.shape == (60000, 32, 32, 3) and data.num_classes == 10


@pytest.mark.parametrize("shape", [(10, 20, 20), (10, 20, 30, 3), (10, 12, 12, 1), (10, 20, 20, 4)])
def test_npz_of_any_layout_becomes_run_shape(tmp_path, shape):
    path = tmp_path / "x.npz"
    np.savez(path, images=np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8))
    for channels in (1, 3):
        data = load_data(DataConfig(str(path), size=16, channels=channels))
        assert data.images.shape == (10, 16, 16, channels) and data.labels is None


def test_npz_with_floats_or_pickles_is_refused(tmp_path):
    path = tmp_path / "f.npz"
    np.savez(path, images=np.zeros((3, 8, 8), dtype=np.float32))
    with pytest.raises(UserError, match="must be uint8"):
        load_data(DataConfig(str(path), size=8))
    objects = tmp_path / "o.npz"
    np.savez(objects, images=np.array([{"a": 1}], dtype=object))
    with pytest.raises(UserError):
        load_data(DataConfig(str(objects), size=8))


def test_centre_crop_keeps_the_middle(tmp_path):
    images = np.zeros((1, 16, 48), dtype=np.uint8)
    images[:, :, 16:32] = 255  # the middle third is white
    path = tmp_path / "wide.npz"
    np.savez(path, images=images)
    out = load_data(DataConfig(str(path), size=16)).images[0, :, :, 0]
    assert out.min() >= 250


def test_device_dataset_batches_in_range_and_flips_deterministically(tiny_npz):
    data = load_data(DataConfig(str(tiny_npz), size=16))
    dataset = DeviceDataset(data, torch.device("cpu"), flip=True)
    a = dataset.batch(32, torch.Generator().manual_seed(1))
    b = dataset.batch(32, torch.Generator().manual_seed(1))
    assert a.images.shape == (32, 1, 16, 16) and a.images.min() >= -1 and a.images.max() <= 1
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert dataset.images.dtype == torch.uint8
