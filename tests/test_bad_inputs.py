"""Bad inputs get one clear line, never a traceback, a silent wrong result or an out-of-memory.

Each probe runs the ``pyromim`` command in-process (or the loader it calls) and
checks that the error is a single line naming the file, line, option or spec key
at fault and what to do. The memory probes check the refusal itself and, for
compressed files, that the memory used while refusing stays near the limit.
"""

import gzip
import io
import struct
import subprocess
import sys
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from pyromim.cli import main
from pyromim.data import DataFileError, load_file
from pyromim.data.files import read_array
from pyromim.models import CheckpointError
from pyromim.specs import ModelSpec, SpecError, resolve_spec
from pyromim.specs.catalogue import catalogue_dir

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--epochs", "1", "--n-train", "64", "--n-val", "32", "--n-test", "32", "--num-samples", "5"]
QUIET = ["--no-progress", "--no-plots"]
TOY4 = (catalogue_dir() / "toy4.toml").read_text()  # the keys it sets, not every default


def one_error_line(argv, capsys, status=2):
    """Run the command; return its one error line after checking the status, that no traceback was printed
    and that nothing was written under ``runs/`` (where a run without ``--out`` goes)."""
    runs = Path("runs")
    before = sorted(runs.rglob("*")) if runs.exists() else None
    code = main([*argv, *QUIET] if argv[0] in ("train", "compare") else argv)
    out, err = capsys.readouterr()
    assert code == status, err
    assert (sorted(runs.rglob("*")) if runs.exists() else None) == before, "the refused command wrote under runs/"
    assert "Traceback" not in err and "Traceback" not in out, err
    errors = [line for line in err.splitlines() if line.startswith("pyromim ")]
    assert len(errors) == 1, err
    return errors[0]


def write_spec(path, text=TOY4, **replace):
    for old, new in replace.items():
        assert old in text
        text = text.replace(old, new)
    path.write_text(text)
    return str(path)


# ------------------------------------------------------------- silent acceptance


def test_labels_too_large_to_be_integers_are_refused(tmp_path):
    x = np.random.default_rng(0).random((20, 2)).astype(np.float32)
    np.savez(tmp_path / "big.npz", x=x, y=np.full(20, 1e30))
    with pytest.raises(DataFileError, match=r"big\.npz: labels must be class numbers .*got 1e\+30; renumber"):
        load_file(tmp_path / "big.npz")
    np.savez(tmp_path / "edge.npz", x=x, y=np.full(20, 2.0**53))  # the largest exact label still loads
    assert int(load_file(tmp_path / "edge.npz").labels[0]) == 2**53
    np.savez(tmp_path / "huge.npz", x=x, y=np.full(20, 2**63 - 1, dtype=np.uint64))
    with pytest.raises(DataFileError, match="labels must be class numbers"):
        load_file(tmp_path / "huge.npz")


@pytest.mark.parametrize("threshold", ["nan", "inf", "-inf"])
def test_a_non_finite_binarize_threshold_is_refused(tmp_path, capsys, threshold):
    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((100, 2)).astype(np.float32))
    line = one_error_line(["train", "toy4", "--data", str(tmp_path / "x.npy"), f"--binarize={threshold}"], capsys)
    assert "--binarize takes a finite threshold" in line
    with pytest.raises(DataFileError, match=r"x\.npy: the binarisation threshold must be a finite number"):
        load_file(tmp_path / "x.npy", binarize=float(threshold))


def test_a_data_set_too_small_to_evaluate_is_refused_before_training(tmp_path, capsys):
    np.save(tmp_path / "five.npy", np.random.default_rng(0).random((5, 2)).astype(np.float32))
    out = tmp_path / "run"
    line = one_error_line(["train", "toy4", "--data", str(tmp_path / "five.npy"), "--out", str(out)], capsys)
    assert "five.npy (train): 5 item(s) and no test or validation part" in line
    assert "at least 55 items" in line  # round(0.1 * 55) = 6 test items, the fewest the metrics take
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize(
    ("table", "line", "expected"),
    [
        ("[loss]", "symetric = true", "unknown key 'loss'; the keys are: name, data, model"),
        ("[training]", "symetric = true", "unknown key 'training.symetric'; the keys of [training] are: objective"),
        ("[training]", "patiense = 2", "unknown key 'training.patiense'; did you mean 'patience'?"),
    ],
)
def test_unknown_spec_keys_are_refused_naming_the_close_match(tmp_path, capsys, table, line, expected):
    text = TOY4 + f"\n{table}\n{line}\n" if table == "[loss]" else TOY4.replace("[training]\n", f"[training]\n{line}\n")
    path = write_spec(tmp_path / "typo.toml", text)
    assert expected in one_error_line(["train", path, *TINY], capsys)


# ------------------------------------------------------------- out of memory


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({'prior = "normal"': 'prior = "mixture"\nprior_components = 1000000000'}, "model.prior_components"),
        ({'prior = "normal"': 'prior = "vampprior"\nprior_components = 1000000000'}, "model.prior_components"),
        ({'prior = "normal"': 'prior = "normal"\nmarginal_components = 1000000000'}, "model.marginal_components"),
        ({'prior = "normal"': 'prior = "normal"\nlevels = 2\ntop_latent_dim = 1000000000'}, "model.top_latent_dim"),
    ],
)
def test_specs_asking_for_more_memory_than_there_is_name_their_key(tmp_path, capsys, monkeypatch, change, key):
    # 16 GB: each of these specs needs at least 32 GB to train (weights, gradients and Adam's two moments)
    monkeypatch.setattr("pyromim.models.memory.available_memory", lambda: 16 * 10**9)

    def no_model(spec):
        raise AssertionError("the model was built before the memory check")  # tens of GB allocated

    monkeypatch.setattr("pyromim.experiments.runner.build_model", no_model)
    path = write_spec(tmp_path / "big.toml", **change)
    line = one_error_line(["train", path, *TINY, "--out", str(tmp_path / "run")], capsys)
    assert f"'{key}' = 1000000000 needs at least" in line and "this machine has 16.0 GB; lower it" in line
    assert not (tmp_path / "run").exists()  # refused before the run directory is made


def _variants():
    """Catalogue specs with each prior, a learned marginal, norms and Gaussian scales (small sizes)."""
    from pyromim.specs import available_specs

    for name in available_specs():
        spec = resolve_spec(name)
        for prior in ("normal", "learned_normal", "mixture", "vampprior"):
            for marginal in (0, 3):
                norm = "layer" if prior == "mixture" else "batch" if prior == "vampprior" else "none"
                scale = "learned" if marginal and spec.model.likelihood == "gaussian" else spec.model.likelihood_scale
                model = {**spec.to_dict()["model"], "prior": prior, "prior_components": 4}
                model.update(marginal_components=marginal, likelihood_scale=scale)
                tables = {**spec.to_dict(), "model": model}
                for side in ("encoder", "decoder"):
                    tables[side] = {**tables[side], "norm": norm}
                yield ModelSpec.from_dict(tables)


def test_the_memory_estimate_counts_every_parameter_a_spec_creates():
    from pyromim.models import build_model
    from pyromim.models.memory import estimate_memory

    checked = 0
    for spec in _variants():
        built = sum(p.numel() for p in build_model(spec).parameters())
        assert estimate_memory(spec).n_weights == built, spec.to_toml()
        checked += 1
    assert checked >= 40


def _peak_while(fn):
    """Peak bytes traced by tracemalloc (Python, NumPy and array buffers) while ``fn`` runs."""
    tracemalloc.start()
    try:
        fn()
    except DataFileError as err:
        error = err
    else:
        error = None
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak, error


LIMIT = 4 * 2**20


def test_a_csv_bomb_is_refused_with_memory_near_the_limit(tmp_path):
    path = tmp_path / "bomb.csv.gz"
    with gzip.open(path, "wb") as f:  # 32 MB of "0,0,...": 256 MB as numbers
        f.write(b"0,0,0,0,0,0,0,0\n" * (2 * 2**20))
    peak, error = _peak_while(lambda: load_file(path, max_decompressed_bytes=LIMIT))
    assert error is not None and "bomb.csv.gz: parses to" in str(error) and "more than 4 MB" in str(error)
    assert peak < 1.2 * LIMIT, peak


@pytest.mark.parametrize("name", ["big-idx3-ubyte.gz", "big.npy.gz"])
def test_compressed_arrays_declaring_more_than_the_limit_are_refused_before_reading(tmp_path, name):
    path = tmp_path / name
    with gzip.open(path, "wb") as f:
        if name.endswith("ubyte.gz"):
            f.write(b"\x00\x00\x08\x02" + struct.pack(">ii", 2**20, 16) + bytes(2**24))
        else:
            np.save(f, np.zeros((2**20, 4), np.float32))
    peak, error = _peak_while(lambda: load_file(path, max_decompressed_bytes=LIMIT))
    assert error is not None and "declares shape" in str(error) and "more than 4 MB" in str(error)
    assert peak < 0.2 * LIMIT, peak


def test_loading_a_compressed_idx_file_takes_its_values_and_one_float_copy(tmp_path):
    # 32 MB of bytes become 128 MB of float32 grey levels; the checks on them work a chunk at a time
    path = tmp_path / "images-idx3-ubyte.gz"
    with gzip.open(path, "wb") as f:
        f.write(b"\x00\x00\x08\x03" + struct.pack(">iii", 2**15, 32, 32) + bytes(range(256)) * 2**17)
    code = (
        "import resource, sys\n"
        "from pyromim.data import load_file\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        f"data = load_file({str(path)!r})\n"
        "assert data.kind == 'grey' and data.x.shape == (2**15, 32, 32), data\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    extra_mb = float(done.stdout.split()[-1])
    assert extra_mb < 1.2 * (32 + 128), extra_mb


# ------------------------------------------------------------- raw tracebacks


def test_a_deeply_nested_spec_is_refused(tmp_path, capsys):
    path = tmp_path / "nested.toml"
    path.write_text("a = " + "[" * 100_000 + "]" * 100_000 + "\n")
    assert "nested.toml: not a spec: its arrays or tables are nested too deeply" in one_error_line(
        ["train", str(path), *TINY], capsys
    )


@pytest.mark.parametrize("value", ["inf", "nan"])
def test_a_non_finite_fixed_scale_is_refused_naming_the_key(tmp_path, capsys, value):
    path = write_spec(
        tmp_path / "fixed.toml",
        **{'likelihood_scale = "per_datum"': f'likelihood_scale = "fixed"\nlikelihood_fixed_scale = {value}'},
    )
    line = one_error_line(["train", path, *TINY], capsys)
    assert "'model.likelihood_fixed_scale' must be" in line and value in line


def test_npy_headers_are_checked_before_anything_is_allocated(tmp_path):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (2**40, 4)})
    (tmp_path / "huge.npy").write_bytes(header.getvalue() + bytes(64))
    with pytest.raises(DataFileError, match=r"huge\.npy: \.npy header declares shape \(1099511627776, 4\) of float32"):
        load_file(tmp_path / "huge.npy")
    np.save(tmp_path / "ok.npy", np.ones((10, 3), np.float32))
    (tmp_path / "cut.npy").write_bytes((tmp_path / "ok.npy").read_bytes()[:-4])
    with pytest.raises(DataFileError, match=r"cut\.npy: .* holds 116 bytes after the header; the file is truncated"):
        load_file(tmp_path / "cut.npy")
    (tmp_path / "text.npy").write_text("not an array")
    with pytest.raises(DataFileError, match=r"text\.npy: not a \.npy file"):
        load_file(tmp_path / "text.npy")
    np.save(tmp_path / "objects.npy", np.array([1, "a"], dtype=object), allow_pickle=True)
    with pytest.raises(DataFileError, match=r"objects\.npy: holds Python objects"):
        load_file(tmp_path / "objects.npy")


def test_npz_arrays_have_their_headers_checked_against_the_archive(tmp_path):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (2**40, 4)})
    with zipfile.ZipFile(tmp_path / "huge.npz", "w") as archive:
        archive.writestr("x.npy", header.getvalue() + bytes(64))
    with pytest.raises(
        DataFileError, match=r"huge\.npz \(array 'x'\): \.npy header declares shape \(1099511627776, 4\)"
    ):
        load_file(tmp_path / "huge.npz")
    values = np.asfortranarray(np.random.default_rng(0).random((30, 4)))
    np.savez_compressed(tmp_path / "ok.npz", x=values, y=np.arange(30) % 3)
    loaded, labels = read_array(tmp_path / "ok.npz")
    assert np.array_equal(loaded, values) and labels.tolist() == [i % 3 for i in range(30)]


def test_a_gzipped_npy_file_is_read(tmp_path):
    values = np.asfortranarray(np.random.default_rng(0).random((30, 4)))
    with gzip.open(tmp_path / "x.npy.gz", "wb") as f:
        np.save(f, values)
    loaded, labels = read_array(tmp_path / "x.npy.gz")
    assert labels is None and np.array_equal(loaded, values)
    whole = io.BytesIO()
    np.save(whole, values)
    with gzip.open(tmp_path / "cut.npy.gz", "wb") as f:
        f.write(whole.getvalue()[:-8])
    with pytest.raises(DataFileError, match=r"cut\.npy\.gz: .* but the file ends after 952; .*truncated"):
        read_array(tmp_path / "cut.npy.gz")


@pytest.mark.parametrize("value", ["inf", "nan", "0", "-1"])
def test_max_decompressed_mb_must_be_a_finite_positive_number(capsys, value):
    line = one_error_line(["train", "toy4", "--max-decompressed-mb", value, *TINY], capsys)
    assert "--max-decompressed-mb must be a finite number of megabytes > 0" in line


def test_a_csv_field_over_the_csv_module_limit_names_the_line(tmp_path):
    (tmp_path / "wide.csv").write_text("1,2\n3," + "4" * 200_000 + "\n")
    with pytest.raises(DataFileError, match=r"wide\.csv: line 2 is not a table row of numbers \(field larger"):
        load_file(tmp_path / "wide.csv")


def test_strategy_names_are_checked_before_any_work(capsys):
    line = one_error_line(["train", "toy4", "--strategy", "bogus", *TINY], capsys)
    assert "--strategy 'bogus' is not a Lightning strategy; use one of: auto, ddp" in line
    assert "did you mean 'ddp_spawn'" in one_error_line(["train", "toy4", "--strategy", "ddp_spwan", *TINY], capsys)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["train", "toy4", "--seed", "-1"], "--seed -1: seeds must lie in [0, 2**32 - 1]"),
        (["train", "toy4", "--seed", str(2**32)], f"--seed {2**32}: seeds must lie in [0, 2**32 - 1]"),
        (["evaluate", "nowhere", "--seed", "-1"], "--seed -1: seeds must lie"),
        (
            ["compare", "toy4", "--seed", str(2**32 - 2), "--seeds", "3"],
            f"--seed {2**32 - 2} with --seeds 3 gives seeds up to {2**32}",
        ),
    ],
)
def test_seeds_outside_numpys_range_are_refused(capsys, argv, expected):
    assert expected in one_error_line([*argv, *TINY] if argv[0] != "evaluate" else argv, capsys)


def test_run_config_refuses_seeds_outside_numpys_range():
    from pyromim.experiments import RunConfig

    assert RunConfig(seed=2**32 - 1).validate().seed == 2**32 - 1
    for seed in (-1, 2**32):
        with pytest.raises(SpecError, match=r"'seed' must be an int in \[0, 2\*\*32 - 1\]"):
            RunConfig(seed=seed).validate()


# ------------------------------------------------------------- damaged run directories


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("bad_inputs") / "toy"
    assert main(["train", "toy4", "--out", str(out), *TINY, *QUIET]) == 0
    return out


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"this is [[[ garbage", "spec.toml: not valid TOML (Expected '=' after a key"),
        (b"\xff\xfe\x00 spec", "spec.toml: not a spec file: byte 0 is not UTF-8 text"),
    ],
)
def test_a_damaged_spec_toml_beside_a_checkpoint_is_named(trained, tmp_path, capsys, content, expected):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained, run)
    (run / "spec.toml").write_bytes(content)
    line = one_error_line(["evaluate", str(run / "checkpoints" / "best.ckpt"), "--n-test", "32"], capsys)
    assert expected in line and "restore the run's spec" in line


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("drop_state_dict", "not a training checkpoint: it holds no 'state_dict' of named tensors"),
        ("string_epoch", "not a training checkpoint: its 'epoch' is 'five', not a whole number >= 0"),
    ],
)
def test_re_signed_checkpoints_without_a_training_layout_are_refused(trained, tmp_path, capsys, change, expected):
    from pyromim.training import load_checkpoint, save_atomically

    state = load_checkpoint(trained / "checkpoints" / "last.ckpt")
    if change == "drop_state_dict":
        del state["state_dict"]
    else:
        state["epoch"] = "five"
    save_atomically(state, tmp_path / "signed.ckpt")  # a valid checksum over the changed content
    assert expected in one_error_line(["evaluate", str(tmp_path / "signed.ckpt"), "--n-test", "32"], capsys)
    line = one_error_line(["train", "toy4", "--resume", str(tmp_path / "signed.ckpt"), *TINY], capsys)
    assert expected in line
    with pytest.raises(CheckpointError, match=expected.replace("(", r"\(")):
        from pyromim.training.lightning_checkpoints import check_training_layout

        check_training_layout(tmp_path / "signed.ckpt", load_checkpoint(tmp_path / "signed.ckpt"))


# ------------------------------------------------------------- data as it comes


def test_a_byte_order_mark_does_not_cost_a_header_less_csv_its_first_row(tmp_path):
    rows = np.random.default_rng(0).random((10, 3))
    text = "\n".join(",".join(f"{v:.6f}" for v in row) for row in rows) + "\n"
    (tmp_path / "bom.csv").write_text(text, encoding="utf-8-sig")
    assert (tmp_path / "bom.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    data = load_file(tmp_path / "bom.csv")
    assert data.x.shape == (10, 3)
    assert torch.allclose(data.x, torch.as_tensor(rows, dtype=torch.float32), atol=1e-6)


def test_a_label_like_csv_column_suggests_label_column(tmp_path, caplog):
    rng = np.random.default_rng(0)
    lines = [f"{a:.4f},{b:.4f},{i % 3}" for i, (a, b) in enumerate(rng.random((30, 2)))]
    (tmp_path / "named.csv").write_text("a,b,class\n" + "\n".join(lines) + "\n")
    (tmp_path / "plain.csv").write_text("a,b,c\n" + "\n".join(lines) + "\n")
    (tmp_path / "floats.csv").write_text("a,b\n" + "\n".join(line.rsplit(",", 1)[0] for line in lines) + "\n")
    for name, column in (("named.csv", "class"), ("plain.csv", "c")):
        caplog.clear()
        assert load_file(tmp_path / name).x.shape == (30, 3)
        assert f"column '{column}' holds integers and is read as data" in caplog.text
        assert f"pass --label-column {column}" in caplog.text
        caplog.clear()
        assert load_file(tmp_path / name, label_column=column).labels.tolist() == [i % 3 for i in range(30)]
        assert "--label-column" not in caplog.text
    caplog.clear()
    load_file(tmp_path / "floats.csv")
    assert "--label-column" not in caplog.text


def test_a_text_column_names_itself_and_suggests_label_column(tmp_path):
    (tmp_path / "words.csv").write_text("x,y,kind\n0.1,0.2,cat\n0.3,0.4,dog\n")
    with pytest.raises(DataFileError, match=r"line 2: column 2 \('kind'\) holds 'cat'.*--label-column kind"):
        load_file(tmp_path / "words.csv")


def test_a_shape_mismatch_shows_the_spec_line_to_write(tmp_path, capsys):
    np.save(tmp_path / "x20.npy", np.random.default_rng(0).integers(0, 2, (100, 20)).astype(np.float32))
    line = one_error_line(["train", "digits_normal", "--data", str(tmp_path / "x20.npy"), *TINY], capsys)
    assert "items of shape (20,)" in line and "write `shape = [20]` under [data]" in line


def test_cli_hints_use_the_option_names(tmp_path, capsys):
    np.save(tmp_path / "grey.npy", np.random.default_rng(0).random((100, 64)).astype(np.float32))
    line = one_error_line(["train", "digits_normal", "--data", str(tmp_path / "grey.npy"), *TINY], capsys)
    assert "--binarize 0.5 on the command line" in line


def test_the_split_of_a_data_file_is_a_setting_of_the_spec_and_the_command(tmp_path, capsys):
    from pyromim.experiments.datasets import prepare_data

    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((200, 2)).astype(np.float32))
    default = prepare_data(resolve_spec("toy4"), tmp_path / "x.npy")
    assert (len(default.train), len(default.val), len(default.test)) == (160, 20, 20)
    spec = ModelSpec.from_toml(TOY4.replace("[model]", "val_fraction = 0.3\ntest_fraction = 0.4\n\n[model]"))
    from_spec = prepare_data(spec, tmp_path / "x.npy")
    assert (len(from_spec.train), len(from_spec.val), len(from_spec.test)) == (60, 60, 80)
    overridden = prepare_data(spec, tmp_path / "x.npy", data_options={"test_fraction": 0.0})
    assert (len(overridden.train), len(overridden.val), overridden.test) == (140, 60, None)
    with pytest.raises(SpecError, match=r"'data.val_fraction' \+ 'data.test_fraction' must be below 1"):
        ModelSpec.from_toml(TOY4.replace("[model]", "val_fraction = 0.5\ntest_fraction = 0.5\n\n[model]"))
    data = ["--data", str(tmp_path / "x.npy")]
    for argv, expected in (
        (["--val-fraction", "1.5", *data], "--val-fraction must lie in [0, 1) (a share of the items), got 1.5"),
        (["--val-fraction", "0.6", "--test-fraction", "0.4", *data], "--val-fraction plus --test-fraction must be"),
        (["--data", "toy4", "--test-fraction", "0.2"], "data options ['test_fraction'] (--test-fraction) apply to"),
        (["--test-fraction", "0.2"], "--test-fraction and the text options apply to a data file"),
    ):
        assert expected in one_error_line(["train", "toy4", *argv, *TINY], capsys)
