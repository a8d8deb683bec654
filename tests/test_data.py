import zipfile

import jax
import numpy as np
import pytest

from ntkscore.inputs import data


def _write(path, **arrays):
    np.savez(path, **arrays)
    return path


def test_load_real_cifar_and_sample_balanced(data_dir):
    x, y = data.load_npz(data_dir / "images" / "cifar10_test_1000.npz")
    assert x.shape == (1000, 32, 32, 3) and x.dtype == np.uint8
    xb, yb = data.load_batch(jax.random.PRNGKey(0), 32, "cifar10", data=data_dir)
    assert xb.shape == (32, 32, 32, 3) and 0.0 <= float(xb.min()) and float(xb.max()) <= 1.0
    counts = np.bincount(np.asarray(yb), minlength=10)
    assert counts.max() - counts.min() <= 1 and counts.sum() == 32
    xc, _ = data.load_batch(jax.random.PRNGKey(0), 32, "cifar10", data=data_dir)
    xd, _ = data.load_batch(jax.random.PRNGKey(1), 32, "cifar10", data=data_dir)
    assert np.array_equal(xb, xc) and not np.array_equal(xb, xd)


def test_random_fallback_is_seeded():
    a = data.random_batch(jax.random.PRNGKey(0), 6, (8, 8, 3), 10)
    b = data.random_batch(jax.random.PRNGKey(0), 6, (8, 8, 3), 10)
    assert np.array_equal(a[0], b[0]) and list(np.asarray(a[1])) == [0, 1, 2, 3, 4, 5]


def test_normalisation_constants():
    assert data.dataset_info("cifar10").mean == pytest.approx((0.4914, 0.4822, 0.4465))
    assert data.dataset_info("cifar100").num_classes == 100
    assert data.dataset_info("ImageNet16-120").input_size == 16


@pytest.mark.parametrize(
    "arrays, message",
    [
        (dict(x=np.zeros((4, 8, 8, 3), np.float32), y=np.zeros(4, int)), "dtype float32; expected uint8"),
        (dict(x=np.zeros((4, 8, 8), np.uint8), y=np.zeros(4, int)), r"expected \(N, H, W, C\)"),
        (dict(x=np.zeros((4, 8, 8, 3), np.uint8), y=np.zeros(3, int)), r"expected \(4,\) labels"),
        (dict(x=np.zeros((4, 8, 8, 3), np.uint8)), r"lacks array\(s\) \['y'\]"),
        (dict(x=np.zeros((4, 8, 8, 3), np.uint8), y=np.full(4, -1)), "non-negative integer labels"),
        (dict(x=np.zeros((4, 8, 8, 3), np.uint8), y=np.zeros(4, np.float32)), "non-negative integer labels"),
    ],
)
def test_bad_npz_files(tmp_path, arrays, message):
    path = _write(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match=message):
        data.load_npz(path)


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data.load_npz(tmp_path / "nope.npz")
    (tmp_path / "junk.npz").write_text("a text file named .npz\n")
    with pytest.raises(ValueError, match="is not an .npz archive") as err:
        data.load_npz(tmp_path / "junk.npz")
    assert "pickle" not in str(err.value)
    np.save(tmp_path / "single.npy", np.zeros(3))
    with pytest.raises(ValueError, match="is not an .npz archive"):
        data.load_npz(tmp_path / "single.npy")
    with zipfile.ZipFile(tmp_path / "broken.npz", "w") as z:  # a zip, but not of .npy arrays
        z.writestr("x.npy", b"garbage")
        z.writestr("y.npy", b"garbage")
    with pytest.raises(ValueError, match="is not a readable .npz archive"):
        data.load_npz(tmp_path / "broken.npz")
    with pytest.raises(FileNotFoundError, match=r"data directory .* does not exist"):
        data.data_dir(tmp_path / "absent")


def test_bad_requests(tmp_path):
    path = _write(tmp_path / "few.npz", x=np.zeros((4, 8, 8, 3), np.uint8), y=np.array([0, 0, 1, 12]))
    with pytest.raises(ValueError, match="label 12 out of range for cifar10"):
        data.load_batch(jax.random.PRNGKey(0), 2, "cifar10", path=path)
    path = _write(tmp_path / "few2.npz", x=np.zeros((4, 8, 8, 3), np.uint8), y=np.array([0, 0, 1, 1]))
    with pytest.raises(ValueError, match="class 2 has 0 images"):
        data.load_batch(jax.random.PRNGKey(0), 10, "cifar10", path=path)
    with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
        data.dataset_info("mnist")
    with pytest.raises(ValueError, match="batch size must be positive"):
        data.random_batch(jax.random.PRNGKey(0), 0)


def test_downsample_is_the_block_mean_and_rejects_bad_sizes():
    x = np.arange(2 * 4 * 4 * 3, dtype=np.float32).reshape(2, 4, 4, 3)
    got = np.asarray(data.downsample(x, 2))
    assert got.shape == (2, 2, 2, 3)
    assert got[1, 0, 1, 2] == np.mean(x[1, 0:2, 2:4, 2])  # the 2×2 block at rows 0-1, columns 2-3
    assert np.array_equal(np.asarray(data.downsample(x, 4)), x)
    with pytest.raises(ValueError, match="cannot downsample 4×4 images to 3×3"):
        data.downsample(x, 3)


def test_scorer_downsamples_real_images_to_a_reduced_input_size(data_dir):
    from ntkscore.scores.scorer import Scorer, ScoreSettings

    scorer = Scorer(ScoreSettings(channels=4, cells_per_stage=1, input_size=8, batch_size=4, kernels="clean"),
                    data_dir=data_dir)
    full, _ = data.load_batch(jax.random.split(jax.random.PRNGKey(0), 3)[1], 4, "cifar10", data=data_dir)
    assert scorer.x.shape == (4, 8, 8, 3)
    assert np.allclose(scorer.x, data.downsample(full, 8))


def test_npz_from_official_pickles_keeps_pixels_and_labels(tmp_path):
    import pickle

    rng = np.random.default_rng(0)
    rows = rng.integers(0, 256, (7, 3 * 32 * 32), dtype=np.uint8)
    with open(tmp_path / "train", "wb") as f:  # the layout of cifar-100-python/train
        pickle.dump({"data": rows, "fine_labels": [0, 1, 2, 3, 4, 99, 5], "coarse_labels": [0] * 7}, f)
    images, classes = data.npz_from_pickles([tmp_path / "train"], tmp_path / "c100.npz", "cifar100")
    x, y = data.load_npz(tmp_path / "c100.npz")
    assert (images, classes) == (7, 7) and x.shape == (7, 32, 32, 3) and list(y) == [0, 1, 2, 3, 4, 99, 5]
    # channel-first rows: pixel (h, w) of channel c is entry c·1024 + h·32 + w
    assert x[5, 3, 17, 2] == rows[5, 2 * 1024 + 3 * 32 + 17] and x[0, 31, 0, 0] == rows[0, 31 * 32]
    small = rng.integers(0, 256, (4, 3 * 16 * 16), dtype=np.uint8)
    with open(tmp_path / "train_data_batch_1", "wb") as f:  # NB201's ImageNet16: 1-based labels of 1000 classes
        pickle.dump({"data": small, "labels": [1, 120, 121, 500]}, f)
    assert data.npz_from_pickles([tmp_path / "train_data_batch_1"], tmp_path / "in.npz", "ImageNet16-120") == (2, 2)
    assert list(data.load_npz(tmp_path / "in.npz")[1]) == [0, 119]
    with pytest.raises(ValueError, match="expects \\(N, 768\\) rows"):
        data.npz_from_pickles([tmp_path / "train"], tmp_path / "bad.npz", "ImageNet16-120")


def test_a_dataset_without_enough_images_is_refused_with_what_to_do(data_dir, tmp_path):
    key = jax.random.PRNGKey(0)
    with pytest.raises(ValueError, match="needs enough images of every one of its 100 classes"):
        data.load_batch(key, 16, "cifar100", path=data_dir / "images" / "cifar100_test_first20_lossless.npz")
    with pytest.raises(FileNotFoundError, match="ntkscore data convert cifar100 .* --inputs random"):
        data.load_batch(key, 16, "cifar100", data=tmp_path)
