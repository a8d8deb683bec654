import jax
import numpy as np
import pytest

from ntkscore import data


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
    (tmp_path / "junk.npz").write_bytes(b"not a zip file at all")
    with pytest.raises(ValueError, match="is not a readable .npz archive"):
        data.load_npz(tmp_path / "junk.npz")
    np.save(tmp_path / "single.npy", np.zeros(3))
    with pytest.raises(ValueError, match="is not a readable .npz archive"):
        data.load_npz(tmp_path / "single.npy")
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
    from ntkscore.score import Scorer, ScoreSettings

    scorer = Scorer(ScoreSettings(channels=4, cells_per_stage=1, input_size=8, batch_size=4, kernels="clean"),
                    data_dir=data_dir)
    full, _ = data.load_batch(jax.random.split(jax.random.PRNGKey(0), 3)[1], 4, "cifar10", data=data_dir)
    assert scorer.x.shape == (4, 8, 8, 3)
    assert np.allclose(scorer.x, data.downsample(full, 8))
