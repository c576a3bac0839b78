from __future__ import annotations

import re
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch

from setae.datasets import (
    MNIST_MAX_SET_SIZE,
    MNISTSets,
    find_mnist,
    image_to_points,
    mnist,
    read_idx,
    write_idx,
)
from setae.errors import SetaeError

ALL_FILES = [name for pair in mnist.MNIST_FILES.values() for name in pair]


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch, tmp_path):
    """No SETAE_DATA, a private cache folder, and any network access fails the test."""
    monkeypatch.delenv("SETAE_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))

    def no_network(url):
        raise AssertionError(f"test tried to fetch {url}")

    monkeypatch.setattr(mnist, "_fetch", no_network)


def _touch_mnist(folder: Path, gz: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in ALL_FILES:
        (folder / (name if gz else name.removesuffix(".gz"))).touch()
    return folder


def _real_file(folder: Path, name: str) -> Path:
    return folder / name if (folder / name).exists() else folder / name.removesuffix(".gz")


# ---------------------------------------------------------------------------------------------------------
# Real MNIST
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_sets(mnist_root) -> dict[str, MNISTSets]:
    return {split: MNISTSets(mnist_root, split, download=False) for split in ("train", "test")}


@pytest.fixture(scope="module")
def test_images(mnist_root) -> np.ndarray:
    return read_idx(_real_file(mnist_root, "t10k-images-idx3-ubyte.gz"))


def test_real_lengths_and_labels(real_sets, mnist_root):
    assert len(real_sets["train"]) == 60000 and len(real_sets["test"]) == 10000
    for split, sets in real_sets.items():
        raw_labels = read_idx(_real_file(mnist_root, mnist.MNIST_FILES[split][1]))
        np.testing.assert_array_equal(sets.labels, raw_labels)
        assert [sets[i][1] for i in (0, 1, -1)] == [int(raw_labels[i]) for i in (0, 1, -1)]
    assert real_sets["train"][0][1] == 5 and real_sets["test"][0][1] == 7


def test_real_items(real_sets):
    rng = np.random.default_rng(0)
    for sets in real_sets.values():
        for i in [0, len(sets) - 1, *rng.integers(len(sets), size=50)]:
            points, label = sets[i]
            assert points.dtype == torch.float32 and points.shape == (sets.sizes[i], 2)
            assert 0 <= points.min() and points.max() <= 1
            assert isinstance(label, int) and 0 <= label <= 9


def test_real_pixel_protocol_by_hand(real_sets, test_images):
    for i in (0, 1, 4321):
        expected = []
        for row in range(28):
            for col in range(28):
                if test_images[i, row, col] >= 34:
                    expected.append((np.float32(col) / np.float32(27), np.float32(row) / np.float32(27)))
        expected = np.array(expected, dtype=np.float32)
        np.testing.assert_array_equal(image_to_points(test_images[i]), expected)
        np.testing.assert_array_equal(real_sets["test"][i][0].numpy(), expected)


def test_real_items_match_image_to_points(real_sets, test_images):
    for i in np.random.default_rng(1).integers(10000, size=200):
        np.testing.assert_array_equal(real_sets["test"][int(i)][0].numpy(), image_to_points(test_images[i]))
    np.testing.assert_array_equal(real_sets["test"].sizes, (test_images >= 34).sum(axis=(1, 2)))


def test_real_max_set_size(real_sets):
    assert max(sets.max_size for sets in real_sets.values()) == MNIST_MAX_SET_SIZE == 342


def test_real_checksums(mnist_root):
    for name in ALL_FILES:
        assert mnist._content_sha256(_real_file(mnist_root, name).read_bytes()) == mnist.MNIST_SHA256[name]


def test_download_into_cache(monkeypatch, mnist_root, tmp_path):
    fetched = []

    def fetch(url):
        fetched.append(url)
        if url.startswith(mnist.MNIST_MIRRORS[0]) and "t10k" in url:
            raise urllib.error.URLError("mirror down")
        return _real_file(mnist_root, url.rsplit("/", 1)[1]).read_bytes()

    monkeypatch.setattr(mnist, "_fetch", fetch)
    cache = tmp_path / "xdg-cache" / "setae" / "mnist"
    assert find_mnist() == cache
    assert sorted(p.name for p in cache.iterdir()) == sorted(ALL_FILES)
    assert len(fetched) == 6  # the t10k files each needed the second mirror
    assert len(MNISTSets(split="test")) == 10000
    fetched.clear()
    assert find_mnist() == cache and fetched == []


# ---------------------------------------------------------------------------------------------------------
# Finding and downloading the files (fake files, no network)
# ---------------------------------------------------------------------------------------------------------


def test_lookup_order(monkeypatch, tmp_path):
    root, env, cache = (_touch_mnist(tmp_path / name) for name in ("root", "env", "xdg-cache/setae/mnist"))
    monkeypatch.setenv("SETAE_DATA", str(env))
    assert find_mnist(root) == root
    assert find_mnist(str(root)) == root
    assert find_mnist() == env
    monkeypatch.setenv("SETAE_DATA", "")
    assert find_mnist() == cache


def test_default_cache_is_under_home(monkeypatch, tmp_path):
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    cache = _touch_mnist(tmp_path / "home/.cache/setae/mnist")
    assert find_mnist() == cache


def test_uncompressed_names_are_accepted(tmp_path):
    folder = _touch_mnist(tmp_path / "raw", gz=False)
    assert find_mnist(folder) == folder
    (folder / "t10k-labels-idx1-ubyte").unlink()
    (folder / "t10k-labels-idx1-ubyte.gz").touch()
    assert find_mnist(folder) == folder


def test_explicit_folder_with_missing_files(monkeypatch, tmp_path):
    folder = _touch_mnist(tmp_path / "partial")
    (folder / "train-labels-idx1-ubyte.gz").unlink()
    (folder / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(SetaeError) as info:
        find_mnist(folder)
    message = str(info.value)
    assert message.startswith(f"{folder}: missing MNIST file(s) ")
    assert "train-labels-idx1-ubyte.gz" in message and "t10k-images-idx3-ubyte.gz" in message
    assert "train-images" not in message
    monkeypatch.setenv("SETAE_DATA", str(folder))
    with pytest.raises(SetaeError, match=f"^SETAE_DATA={re.escape(str(folder))}: missing MNIST file"):
        find_mnist()
    with pytest.raises(SetaeError, match="no such folder"):
        find_mnist(tmp_path / "absent")


def _assert_not_found_message(message: str, tmp_path: Path) -> None:
    assert "\n" not in message
    assert all(name in message for name in ALL_FILES)
    assert "SETAE_DATA=<folder>" in message and str(tmp_path / "xdg-cache/setae/mnist") in message


def test_offline_error_names_all_files(monkeypatch, tmp_path):
    fetched = []

    def offline(url):
        fetched.append(url)
        raise urllib.error.URLError("[Errno -3] Temporary failure\nin name resolution")

    monkeypatch.setattr(mnist, "_fetch", offline)
    with pytest.raises(SetaeError) as info:
        find_mnist()
    _assert_not_found_message(str(info.value), tmp_path)
    assert "download failed" in str(info.value)
    assert len(fetched) == len(mnist.MNIST_MIRRORS)  # every mirror tried for the first file, then stop


def test_no_download_when_turned_off(tmp_path):
    with pytest.raises(SetaeError) as info:
        find_mnist(download=False)
    _assert_not_found_message(str(info.value), tmp_path)
    assert "downloading is turned off" in str(info.value)


def test_checksum_mismatch_leaves_no_file(monkeypatch, tmp_path):
    monkeypatch.setattr(mnist, "_fetch", lambda url: b"\x00\x00\x08\x01not mnist")
    with pytest.raises(SetaeError) as info:
        find_mnist()
    _assert_not_found_message(str(info.value), tmp_path)
    assert "checksum mismatch" in str(info.value)
    cache = tmp_path / "xdg-cache/setae/mnist"
    assert not cache.exists() or list(cache.iterdir()) == []


# ---------------------------------------------------------------------------------------------------------
# MNISTSets on small fake files
# ---------------------------------------------------------------------------------------------------------


def _write_fake_mnist(
    folder: Path, n: int = 5, test_images: np.ndarray | None = None, test_labels: np.ndarray | None = None
) -> None:
    """The four files with n random images and labels each; the test split's replaced where given."""
    rng = np.random.default_rng(0)
    for split, (images_name, labels_name) in mnist.MNIST_FILES.items():
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        if split == "test":
            images = images if test_images is None else test_images
            labels = labels if test_labels is None else test_labels
        write_idx(folder / images_name, images)
        write_idx(folder / labels_name, labels)


def test_fake_sets_match_protocol(tmp_path):
    _write_fake_mnist(tmp_path, n=7)
    images = read_idx(tmp_path / "t10k-images-idx3-ubyte.gz")
    sets = MNISTSets(tmp_path, "test")
    assert len(sets) == 7 and sets.dim == 2 and sets.num_classes == 10
    for i in range(7):
        np.testing.assert_array_equal(sets[i][0].numpy(), image_to_points(images[i]))
    np.testing.assert_array_equal(sets[-1][0], sets[6][0])
    assert sets.max_size == sets.sizes.max()
    with pytest.raises(IndexError):
        sets[7]
    sets[0][0].fill_(-1.0)  # items are copies: the dataset is unchanged
    assert sets[0][0].min() >= 0


def test_bad_split(tmp_path):
    _write_fake_mnist(tmp_path)
    with pytest.raises(SetaeError, match="unknown MNIST split 'valid'"):
        MNISTSets(tmp_path, "valid")


def test_wrong_image_shape(tmp_path):
    _write_fake_mnist(tmp_path, test_images=np.zeros((5, 28, 27), dtype=np.uint8))
    with pytest.raises(SetaeError, match=r"t10k-images-idx3-ubyte.gz: expected MNIST images of shape"):
        MNISTSets(tmp_path, "test")


def test_label_count_mismatch(tmp_path):
    _write_fake_mnist(tmp_path, test_labels=np.zeros(4, dtype=np.uint8))
    with pytest.raises(SetaeError, match="t10k-labels-idx1-ubyte.gz: 4 labels for the 5 images in .*t10k-"):
        MNISTSets(tmp_path, "test")


def test_label_out_of_range(tmp_path):
    _write_fake_mnist(tmp_path, test_labels=np.array([0, 1, 12, 3, 4], dtype=np.uint8))
    with pytest.raises(SetaeError, match="t10k-labels-idx1-ubyte.gz: label 12 at index 2 is not in 0..9"):
        MNISTSets(tmp_path, "test")


def test_labels_of_wrong_type(tmp_path):
    _write_fake_mnist(tmp_path, test_labels=np.zeros(5, dtype=np.int32))
    with pytest.raises(SetaeError, match="t10k-labels-idx1-ubyte.gz: expected MNIST labels of shape"):
        MNISTSets(tmp_path, "test")


def test_image_to_points_checks_input():
    image = np.zeros((28, 28), dtype=np.uint8)
    assert image_to_points(image).shape == (0, 2)
    image[0, 27] = 34
    image[27, 0] = 33
    image[5, 3] = 255
    np.testing.assert_array_equal(image_to_points(image), np.array([[1, 0], [3 / 27, 5 / 27]], np.float32))
    with pytest.raises(SetaeError, match=r"expected \[28, 28\] uint8"):
        image_to_points(image.astype(np.float32))
    with pytest.raises(SetaeError, match=r"shape \[28, 27\]"):
        image_to_points(image[:, 1:])
