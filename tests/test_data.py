"""Data loaders, built-in sets, splits and the data/model fit check."""

import gzip
import struct

import numpy as np
import pytest
import torch

from pyromim.data import (
    ArrayDataset,
    DataFileError,
    DataMismatchError,
    check_data_fits,
    digits,
    infer_kind,
    load_data,
    load_file,
    split_dataset,
    toy4,
    toy4_20,
    toy4_means,
)


def write_idx(path, array, type_byte=0x08, gz=False):
    """Independent IDX writer: magic 0 0 type ndim, big-endian int32 dims, big-endian values."""
    dtypes = {0x08: ">u1", 0x0D: ">f4"}
    payload = struct.pack(">BBBB", 0, 0, type_byte, array.ndim)
    payload += struct.pack(">" + "i" * array.ndim, *array.shape)
    payload += np.asarray(array).astype(dtypes[type_byte]).tobytes()
    opener = gzip.open if gz else open
    with opener(path, "wb") as f:
        f.write(payload)


# ---------------------------------------------------------------- toy mixtures


def test_toy4_means_closed_form():
    means = toy4_means(2)
    assert np.allclose(means[0], 0.0)
    for i in range(4):
        angle = 2 * np.pi * i / 5
        assert np.allclose(means[i + 1], [np.cos(angle), np.sin(angle)])
    means20 = toy4_means(20)
    grid = np.linspace(-50, 50, 100).reshape(5, 20)
    assert np.allclose(means20[:, 2:], grid[:, 2:])
    assert np.allclose(means20[:, :2], means)


@pytest.mark.parametrize("make, dim", [(toy4, 2), (toy4_20, 20)])
def test_toy_mixture_statistics(make, dim):
    splits = make(seed=3)
    train = splits.train
    assert train.x.shape == (10_000, dim) and train.kind == "continuous"
    assert splits.val.x.shape == splits.test.x.shape == (10_000, dim)
    counts = torch.bincount(train.labels, minlength=5)
    # multinomial count sd = sqrt(10000 * 0.2 * 0.8) = 40; allow 5 sd
    assert torch.all((counts - 2000).abs() < 200)
    means = toy4_means(dim)
    for c in range(5):
        pts = train.x[train.labels == c].double()
        # per-dim mean has sd 0.25 / sqrt(~2000) = 0.0056: allow 5 sd (0.03)
        assert torch.allclose(pts.mean(0), torch.as_tensor(means[c]), atol=0.03)
    # pooled residual sd over >= 20,000 values has sd <= 0.25 / sqrt(2 * 20000) = 0.00125: allow ~5 sd
    residual = train.x.double() - torch.as_tensor(means)[train.labels]
    assert abs(residual.std().item() - 0.25) < 0.006


def test_toy_draws_are_fresh_and_seeded():
    a, b, c = toy4(seed=0), toy4(seed=0), toy4(seed=1)
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.labels, b.test.labels)
    assert not torch.equal(a.train.x, a.test.x)
    assert not torch.equal(a.train.x, c.train.x)
    # the train stream does not depend on how many validation points are drawn
    assert torch.equal(toy4(seed=0, n_val=10).train.x, a.train.x)


# ---------------------------------------------------------------- digits


def test_digits_variants_match_sklearn():
    from sklearn.datasets import load_digits

    raw = load_digits()
    binary = digits("binary", seed=0, val_fraction=0.0, test_fraction=0.0).train
    cont = digits("continuous", seed=0, val_fraction=0.0, test_fraction=0.0).train
    assert binary.kind == "binary" and cont.kind == "continuous"
    assert binary.event_shape == (64,) and len(binary) == 1797
    # find each item's original row through the labels-preserving permutation
    order = np.random.default_rng(0).permutation(1797)
    pixels = raw.data[order]
    assert np.array_equal(binary.x.numpy(), (pixels >= 8).astype(np.float32))
    assert np.array_equal(binary.labels.numpy(), raw.target[order])
    # dequantisation: 17 x - pixel is the uniform noise u in [0, 1) (up to float32 rounding, 1e-5)
    noise = cont.x.double().numpy() * 17 - pixels
    assert noise.min() > -1e-5 and noise.max() < 1 + 1e-5
    # mean of 115,008 U[0,1) draws has sd 0.289 / sqrt(115008) = 0.00085: allow ~6 sd
    assert abs(noise.mean() - 0.5) < 0.005
    image = digits("binary", flatten=False).train
    assert image.event_shape == (8, 8)


# ---------------------------------------------------------------- files


def test_npy_with_label_file(tmp_path):
    x = np.random.default_rng(0).normal(size=(30, 3))
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", np.arange(30) % 3)
    data = load_file(tmp_path / "x.npy", labels=tmp_path / "y.npy")
    assert data.kind == "continuous" and data.event_shape == (3,)
    assert np.allclose(data.x.numpy(), x, atol=1e-6)
    assert data.labels.tolist() == (np.arange(30) % 3).tolist()


def test_npz_with_labels_inside(tmp_path):
    x = (np.random.default_rng(1).random((20, 4)) > 0.5).astype(np.float64)
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(20))
    data = load_file(tmp_path / "d.npz")
    assert data.kind == "binary" and data.labels.tolist() == list(range(20))
    np.savez(tmp_path / "two.npz", a=x, b=x)
    with pytest.raises(DataFileError, match=r"two\.npz.*pass key=.*\['a', 'b'\]"):
        load_file(tmp_path / "two.npz")
    assert load_file(tmp_path / "two.npz", key="b").event_shape == (4,)


def test_csv_header_and_label_column(tmp_path):
    (tmp_path / "d.csv").write_text("a,b,label\n0.5,1.5,0\n-1,2,1\n3,4,1\n")
    data = load_file(tmp_path / "d.csv", label_column="label")
    assert data.x.tolist() == [[0.5, 1.5], [-1.0, 2.0], [3.0, 4.0]]
    assert data.labels.tolist() == [0, 1, 1]
    (tmp_path / "plain.csv").write_text("1,2\n3,4\n")
    plain = load_file(tmp_path / "plain.csv")
    assert plain.kind == "counts" and plain.x.shape == (2, 2)
    with gzip.open(tmp_path / "z.csv.gz", "wt") as f:
        f.write("0.1,0.2\n0.3,0.4\n")
    assert load_file(tmp_path / "z.csv.gz").kind == "grey"


@pytest.mark.parametrize("gz", [False, True])
def test_idx_images_and_labels(tmp_path, gz):
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, size=(12, 5, 4), dtype=np.uint8)
    labels = rng.integers(0, 10, size=12, dtype=np.uint8)
    suffix = ".gz" if gz else ""
    write_idx(tmp_path / f"images-idx3-ubyte{suffix}", images, gz=gz)
    write_idx(tmp_path / f"labels-idx1-ubyte{suffix}", labels, gz=gz)
    data = load_file(tmp_path / f"images-idx3-ubyte{suffix}", labels=tmp_path / f"labels-idx1-ubyte{suffix}")
    assert data.kind == "grey" and data.event_shape == (5, 4)
    assert np.allclose(data.x.numpy(), images / 255.0)
    assert data.labels.tolist() == labels.tolist()
    flat = load_file(tmp_path / f"images-idx3-ubyte{suffix}", binarize=0.5, flatten=True)
    assert flat.kind == "binary" and flat.event_shape == (20,)
    assert np.array_equal(flat.x.numpy(), (images.reshape(12, 20) / 255.0 > 0.5).astype(np.float32))


def test_idx_float_detected_by_magic(tmp_path):
    values = np.random.default_rng(3).normal(size=(6, 2)).astype(np.float32)
    write_idx(tmp_path / "points.bin", values, type_byte=0x0D)
    data = load_file(tmp_path / "points.bin")
    assert data.kind == "continuous" and np.allclose(data.x.numpy(), values)


# ---------------------------------------------------------------- bad files


def test_bad_files_give_their_messages(tmp_path):
    images = np.zeros((4, 3, 3), dtype=np.uint8)
    write_idx(tmp_path / "t-idx3-ubyte", images)
    raw = (tmp_path / "t-idx3-ubyte").read_bytes()
    (tmp_path / "cut-idx3-ubyte").write_bytes(raw[:-5])
    with pytest.raises(DataFileError, match=r"cut-idx3-ubyte: IDX header declares shape \(4, 3, 3\).*truncated"):
        load_file(tmp_path / "cut-idx3-ubyte")
    (tmp_path / "bad-idx1-ubyte").write_bytes(b"\x12\x34\x08\x01" + b"\x00" * 8)
    with pytest.raises(DataFileError, match=r"bad-idx1-ubyte: not an IDX file"):
        load_file(tmp_path / "bad-idx1-ubyte")
    (tmp_path / "x.parquet").write_bytes(b"PAR1")
    with pytest.raises(DataFileError, match=r"x\.parquet: unknown data file format; supported formats: \.npy"):
        load_file(tmp_path / "x.parquet")
    with pytest.raises(DataFileError, match=r"missing\.npy: no such data file"):
        load_file(tmp_path / "missing.npy")
    np.save(tmp_path / "x.npy", np.ones((5, 2)))
    np.save(tmp_path / "y.npy", np.arange(4))
    with pytest.raises(DataFileError, match=r"y\.npy: labels of shape \(4,\) do not match 5 data items"):
        load_file(tmp_path / "x.npy", labels=tmp_path / "y.npy")
    np.save(tmp_path / "nan.npy", np.array([[1.0, np.nan], [0.0, 1.0]]))
    with pytest.raises(DataFileError, match=r"nan\.npy: holds 1 non-finite values"):
        load_file(tmp_path / "nan.npy")
    np.save(tmp_path / "grey.npy", np.full((3, 2), 0.5))
    with pytest.raises(DataFileError, match=r"grey\.npy: declared kind 'binary' needs values in \{0, 1\}"):
        load_file(tmp_path / "grey.npy", kind="binary")
    (tmp_path / "words.csv").write_text("1,2\n3,x\n")
    with pytest.raises(DataFileError, match=r"words\.csv: CSV holds a value that is not a number"):
        load_file(tmp_path / "words.csv")
    (tmp_path / "ragged.csv").write_text("1,2\n3\n")
    with pytest.raises(DataFileError, match=r"ragged\.csv: CSV rows have different numbers of columns"):
        load_file(tmp_path / "ragged.csv")
    (tmp_path / "head.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DataFileError, match=r"head\.csv: label column 'y' not found; the header is \['a', 'b'\]"):
        load_file(tmp_path / "head.csv", label_column="y")


def test_check_data_fits_names_file_and_mismatch(tmp_path):
    write_idx(tmp_path / "img-idx3-ubyte", np.full((4, 28, 28), 128, dtype=np.uint8))
    data = load_file(tmp_path / "img-idx3-ubyte")
    with pytest.raises(DataMismatchError) as info:
        check_data_fits(data, event_shape=(784,), kind="grey")
    message = str(info.value)
    assert "img-idx3-ubyte" in message and "(28, 28)" in message and "(784,)" in message
    assert "flatten=True" in message
    with pytest.raises(DataMismatchError, match=r"img-idx3-ubyte.*expects items of shape \(10,\)"):
        check_data_fits(data, event_shape=(10,), kind="grey")
    flat = data.flatten()
    check_data_fits(flat, event_shape=(784,), kind="grey")
    check_data_fits(flat, event_shape=(784,), kind="continuous")
    with pytest.raises(DataMismatchError) as info:
        check_data_fits(flat, event_shape=(784,), kind="binary")
    message = str(info.value)
    assert "img-idx3-ubyte" in message and "expects 'binary'" in message and "'grey'" in message
    assert "binarize" in message
    with pytest.raises(DataMismatchError, match=r"expects 'counts'.*not integers"):
        check_data_fits(flat, event_shape=(784,), kind="counts")
    counts = ArrayDataset(torch.tensor([[0.0, 3.0], [2.0, 7.0]]), "counts", name="c.npy")
    check_data_fits(counts, event_shape=(2,), kind="tokens")
    with pytest.raises(DataMismatchError, match=r"c\.npy.*expects 'grey'.*values 0\.\.7"):
        check_data_fits(counts, event_shape=(2,), kind="grey")


def test_negative_counts_are_called_negative_not_non_integer():
    data = ArrayDataset(torch.tensor([[0.0, -3.0], [2.0, 7.0]]), "continuous", name="neg.npy")
    with pytest.raises(DataMismatchError) as info:
        check_data_fits(data, event_shape=(2,), kind="counts")
    message = str(info.value)
    assert "neg.npy" in message and "1 of them are negative (down to -3)" in message
    assert "not integers" not in message


def test_infer_kind():
    assert infer_kind(np.array([0.0, 1.0])) == "binary"
    assert infer_kind(np.array([0, 2, 5])) == "counts"
    assert infer_kind(np.array([0.2, 1.0])) == "grey"
    assert infer_kind(np.array([-0.2, 1.0])) == "continuous"


# ---------------------------------------------------------------- splits and registry


def test_split_is_deterministic_disjoint_and_complete():
    data = ArrayDataset(torch.arange(100.0)[:, None], "counts", torch.arange(100), "range")
    a = split_dataset(data, val_fraction=0.2, test_fraction=0.1, seed=5)
    b = split_dataset(data, val_fraction=0.2, test_fraction=0.1, seed=5)
    c = split_dataset(data, val_fraction=0.2, test_fraction=0.1, seed=6)
    assert (len(a.train), len(a.val), len(a.test)) == (70, 20, 10)
    assert torch.equal(a.train.x, b.train.x) and not torch.equal(a.train.x, c.train.x)
    ids = torch.cat([p.labels for p in a.parts().values()]).sort().values
    assert torch.equal(ids, torch.arange(100))
    assert torch.equal(a.val.x[:, 0].long(), a.val.labels)  # labels travel with their items
    with pytest.raises(ValueError, match="too few"):
        split_dataset(data.subset([0, 1]), val_fraction=0.5, test_fraction=0.4)


def test_load_data_by_name_or_path(tmp_path):
    assert load_data("toy4", seed=2).train.event_shape == (2,)
    assert load_data("digits_continuous").train.kind == "continuous"
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(50, 2)))
    parts = load_data(tmp_path / "x.npy", seed=1, val_fraction=0.2, test_fraction=0.2)
    assert (len(parts.train), len(parts.val), len(parts.test)) == (30, 10, 10)
    with pytest.raises(FileNotFoundError, match="neither a built-in data set"):
        load_data("toy5")


def test_gzip_csv_bomb_is_refused_while_reading(tmp_path, monkeypatch):
    # 40 kB of compressed zeros expand to 40 MB (20 million values); the limit is 1 MB
    path = tmp_path / "bomb.csv.gz"
    with gzip.open(path, "wb", compresslevel=9) as f:
        for _ in range(40):
            f.write(b"0\n" * 500_000)
    assert path.stat().st_size < 200_000
    monkeypatch.setenv("PYROMIM_MAX_DECOMPRESSED_MB", "1")
    with pytest.raises(DataFileError, match=r"bomb\.csv\.gz: .*more than 1 MB.*PYROMIM_MAX_DECOMPRESSED_MB"):
        load_file(path)
    # the argument raises the limit for a trusted file
    small = tmp_path / "small.csv.gz"
    with gzip.open(small, "wb") as f:
        f.write(b"0,1\n" * 200_000)  # 800 kB of text, 3.2 MB parsed
    with pytest.raises(DataFileError, match="more than 1 MB"):
        load_file(small)
    assert load_file(small, max_decompressed_bytes=8 * 2**20).x.shape == (200_000, 2)


def test_gzip_idx_declaring_gigabytes_is_refused_before_reading(tmp_path, monkeypatch):
    path = tmp_path / "big-idx3-ubyte.gz"
    with gzip.open(path, "wb") as f:
        f.write(b"\x00\x00\x08\x03" + struct.pack(">iii", 60_000, 200, 200))  # 2.4 GB declared
        f.write(b"\x00" * 1_000_000)
    with pytest.raises(
        DataFileError, match=r"big-idx3-ubyte\.gz: declares shape \(60000, 200, 200\).*more than 1024 MB"
    ):
        load_file(path)
    monkeypatch.setenv("PYROMIM_MAX_DECOMPRESSED_MB", "0")
    with pytest.raises(DataFileError, match="PYROMIM_MAX_DECOMPRESSED_MB='0' must be a number of megabytes > 0"):
        load_file(path)


def test_npz_array_expanding_past_the_limit_is_refused(tmp_path):
    path = tmp_path / "zeros.npz"
    np.savez_compressed(path, x=np.zeros((1000, 300)))  # 2.4 MB of float64
    with pytest.raises(DataFileError, match=r"zeros\.npz: holds array 'x\.npy' that expands to more than 1 MB"):
        load_file(path, max_decompressed_bytes=2**20)
    assert load_file(path).x.shape == (1000, 300)


def test_corrupt_compressed_files_are_data_file_errors(tmp_path):
    # found by the fuzz suite: zlib's and zipfile's own exceptions escaped as raw tracebacks
    images = np.arange(4 * 28 * 28, dtype=np.uint32).astype(np.uint8).reshape(4, 28, 28)
    write_idx(tmp_path / "i-idx3-ubyte.gz", images, gz=True)
    raw = bytearray((tmp_path / "i-idx3-ubyte.gz").read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (tmp_path / "i-idx3-ubyte.gz").write_bytes(bytes(raw))
    with pytest.raises(DataFileError, match=r"i-idx3-ubyte\.gz: "):
        load_file(tmp_path / "i-idx3-ubyte.gz")
    np.savez_compressed(tmp_path / "a.npz", x=np.arange(2000.0).reshape(100, 20))
    raw = bytearray((tmp_path / "a.npz").read_bytes())
    raw[raw.rfind(b"PK\x01\x02") + 10] ^= 0x0F  # the compression method in the central directory
    (tmp_path / "a.npz").write_bytes(bytes(raw))
    with pytest.raises(DataFileError, match=r"a\.npz: could not read the file"):
        load_file(tmp_path / "a.npz")


@pytest.mark.parametrize("n", [1, 7, 24, 25])
@pytest.mark.parametrize("replicas", [1, 2, 3, 5, 9])
@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("drop_last", [False, True])
def test_training_batches_take_the_distributed_samplers_order(n, replicas, shuffle, drop_last):
    from torch.utils.data import DistributedSampler

    from pyromim.training.data_module import _sampler_order

    for rank in range(replicas):
        sampler = DistributedSampler(
            range(n), num_replicas=replicas, rank=rank, shuffle=shuffle, seed=3, drop_last=drop_last
        )
        for epoch in (0, 4):
            sampler.set_epoch(epoch)
            assert _sampler_order(sampler).tolist() == list(sampler)
