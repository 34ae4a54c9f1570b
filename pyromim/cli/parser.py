"""The command line's parser: every subcommand, option and help text."""

from __future__ import annotations

import argparse
import logging
from typing import Any

# Only light modules at the top: help and argument errors come back without importing
# torch, Pyro or Lightning (the commands import what they need when they run).
from pyromim.infer.objectives import OBJECTIVES, Q_X_CHOICES, compared_objectives
from pyromim.settings import SETTINGS, setting_info

logger = logging.getLogger("pyromim.cli")

#: The options a resume may change (``pyromim train --resume CKPT``); the others come from the run.
RESUME_MAY_CHANGE = tuple(setting_info(name)["flag"] for name in SETTINGS if setting_info(name)["resumable"])

#: How each kind of setting is read from the command line (``type``), by its rule.
_TYPES = {"int": int, "int?": int, "seed": int, "float": float}

EXAMPLES = """\
examples:
  pyromim train toy4                                 # the MIM paper's toy reference run
  pyromim train toy4 --objective elbo --epochs 20 --out runs/toy4-vae
  pyromim train digits_normal --data images.npz --binarize 0.5
  pyromim train images.npy --likelihood bernoulli    # no spec: one made from the file, kept as spec.toml
  pyromim train toy4 --devices 2 --strategy ddp      # two processes (CPU here, GPUs where present)
  pyromim train --resume runs/toy4/mim-seed0/checkpoints/last.ckpt  # continue it, nothing repeated
  pyromim evaluate runs/toy4/mim-seed0
  pyromim encode runs/toy4/mim-seed0 --out codes.csv --samples 5   # latent codes of the test part
  pyromim compare toy4 --objectives elbo,amim,mim --seeds 3 --epochs 30 --n-train 5000
"""


def _data_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("data")
    group.add_argument(
        "--data",
        metavar="NAME|PATH",
        help="built-in data set (toy4, toy4_20, digits, digits_continuous, sentences) or a file "
        "(.npy, .npz, .csv, MNIST IDX, .txt text one sentence a line; optionally .gz); default: the spec's own",
    )
    group.add_argument("--labels", metavar="PATH", help="file of integer labels, one per item (for a data file)")
    group.add_argument("--binarize", type=float, metavar="T", help="map file values > T to 1 and the rest to 0")
    group.add_argument("--label-column", metavar="NAME|INDEX", help="CSV column holding the labels")
    for part in ("val", "test"):
        group.add_argument(
            f"--{part}-fraction",
            type=float,
            metavar="F",
            help=f"share of a data file's items kept for {'validation' if part == 'val' else 'testing'} "
            f"(default: the spec's [data] {part}_fraction, else 0.1)",
        )
    group.add_argument(
        "--vocabulary", metavar="PATH", help="text (.txt) data: read with this vocabulary file (vocabulary.json)"
    )
    group.add_argument(
        "--min-count", type=int, metavar="N", help="text data: words seen fewer than N times become <unk>"
    )
    group.add_argument("--lowercase", action="store_true", help="text data: lower-case every line")
    group.add_argument("--truncate", action="store_true", help="text data: cut sentences longer than the model's width")
    setting_argument(group, "seed")
    group.add_argument(
        "--max-decompressed-mb",
        type=float,
        metavar="MB",
        help="most megabytes a compressed data file (.gz, .npz) may expand to (default 1024; "
        "environment variable PYROMIM_MAX_DECOMPRESSED_MB)",
    )


def _cap_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("quick runs")
    for part in ("train", "val", "test"):
        group.add_argument(f"--n-{part}", type=int, metavar="N", help=f"use at most N {part} items")
    group.add_argument(
        "--num-samples",
        type=int,
        metavar="S",
        help="importance samples per item for the test NLL (default 1000; on --resume, the run's)",
    )


def setting_argument(group: argparse._ActionsContainer, name: str, help_suffix: str = "") -> None:
    """Add the option of :class:`~pyromim.training.TrainConfig`'s field ``name``, made from its
    declaration (:func:`pyromim.settings.setting_info`): flag, help, metavar, type and choices.

    Left out, the option is ``None`` (a spec's key keeps the spec's value), except the device
    options, which default to TrainConfig's values; ``--no-NAME`` turns a setting off, and a
    spec's true-or-false key takes ``--NAME`` and ``--no-NAME``."""
    info = setting_info(name)
    kwargs: dict[str, Any] = {"help": info["help"] + help_suffix}
    if info["rule"] == "bool" and info["flag"].startswith("--no-"):
        kwargs["action"] = "store_true"
    elif info["rule"] == "bool":
        kwargs["action"] = argparse.BooleanOptionalAction
        kwargs["help"] += " (default: the spec's, else true)" if info["default"] else ""
    else:
        kwargs.update(type=_TYPES.get(info["rule"], str), metavar=info["metavar"], choices=info["choices"])
        if info["group"] == "devices":
            kwargs["default"] = info["default"] if info["rule"] != "devices" else str(info["default"])
    group.add_argument(info["flag"], **{key: value for key, value in kwargs.items() if value is not None})


def _training_arguments(parser: argparse.ArgumentParser, objective: bool = True) -> None:
    group = parser.add_argument_group("training (defaults: the spec's [training] table)")
    if objective:
        group.add_argument(
            "--objective",
            choices=tuple(OBJECTIVES),
            help="elbo: Trace_ELBO (VAE); amim: asymmetric MIM; mim: symmetric MIM; "
            "mim_score: symmetric MIM with the unbiased decoder-side gradient; mim_score_loo: the same with "
            "leave-one-out baselines; mim_encoder_side: symmetric MIM whose guide learns from the encoder side "
            "alone (strong decoders)",
        )
    resumable = " (may change on --resume)" if objective else ""  # train's options; compare has no --resume
    for name in SETTINGS:
        if setting_info(name)["group"] == "training":
            setting_argument(group, name, resumable if setting_info(name)["resumable"] else "")
        if name == "patience":
            group.add_argument("--q-x", choices=Q_X_CHOICES, help="log q(x) estimate of the MIM objectives")
    devices = parser.add_argument_group("devices")
    for name in SETTINGS:
        if setting_info(name)["group"] == "devices":
            setting_argument(devices, name)
    output = parser.add_argument_group("output")
    output.add_argument("--no-plots", action="store_true", help="write no PNG plots")
    output.add_argument(
        "--overwrite", action="store_true", help="replace an earlier run in the output directory (else refused)"
    )
    setting_argument(output, "progress")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``pyromim`` command."""
    parser = argparse.ArgumentParser(
        prog="pyromim",
        description="Train, evaluate and compare latent-variable models with the ELBO, A-MIM and MIM.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    common = argparse.ArgumentParser(add_help=False)
    verbosity = common.add_mutually_exclusive_group()
    verbosity.add_argument(
        "-q", "--quiet", action="store_true", help="print errors and the result only (no progress bar, no warnings)"
    )
    verbosity.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="print every message and warning, Lightning's own included, and tracebacks of errors",
    )
    sub = parser.add_subparsers(dest="command", metavar="{train,evaluate,encode,compare}", required=True)
    _train_parser(sub, common)
    _evaluate_parser(sub, common)
    _encode_parser(sub, common)
    _compare_parser(sub, common)
    return parser


#: The object ``add_subparsers`` returns, to which each subcommand's parser is added.
Subparsers = argparse._SubParsersAction  # (argparse has no public name for it)


def _train_parser(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    train = sub.add_parser(
        "train",
        parents=[common],
        help="train one model from a spec, evaluate it, write plots",
        description="Train SPEC on its data (or --data), then write checkpoints, metrics.csv, "
        "metrics.json, model.pt, spec.toml, run.json and plots into --out. "
        "Given a data file instead of a spec, train a spec made from the file (its item shape and data kind, "
        "--likelihood, --latent-dim) and write it into --out as spec.toml, to edit and train again.",
    )
    train.add_argument(
        "spec",
        metavar="SPEC",
        nargs="?",
        help="a spec name from the catalogue (e.g. toy4), a .toml file, or a data file (.npy, .npz, .csv, "
        ".txt, MNIST IDX) to train without a spec (not needed with --resume)",
    )
    from_file = train.add_argument_group("training on a data file without a spec (pyromim train FILE)")
    from_file.add_argument(
        "--likelihood",
        metavar="NAME",
        help="p(x|z), one that fits the file's data kind (default: the one that plainly fits: bernoulli for "
        "binary data, gaussian for continuous, categorical for text; counts need a choice)",
    )
    from_file.add_argument(
        "--latent-dim", type=int, metavar="N", help="size of the latent z (default 8, or the item size if smaller)"
    )
    _training_arguments(train)
    _data_arguments(train)
    _cap_arguments(train)
    train.add_argument("--out", metavar="DIR", help="run directory (default runs/SPEC/OBJECTIVE-seedS)")
    train.add_argument(
        "--resume",
        metavar="CKPT",
        help="continue the run that wrote CKPT (a last.ckpt) with its own spec, objective, seed, data, caps "
        f"and epoch budget; only {', '.join(RESUME_MAY_CHANGE)} and the output options may differ "
        "(other options, if given, must equal the run's); default --out: the checkpoint's run directory",
    )


def _evaluate_parser(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    evaluate = sub.add_parser(
        "evaluate",
        parents=[common],
        help="evaluate a trained run and print its metrics",
        description="Evaluate a run directory, its model.pt or a training checkpoint "
        "on the test part of its data (or --data) and write the metrics as JSON.",
    )
    evaluate.add_argument("path", metavar="RUN_DIR_OR_CKPT")
    _data_arguments(evaluate)
    evaluate.add_argument("--split", choices=("test", "val", "train"), default="test", help="part to evaluate")
    evaluate.add_argument("--n-train", type=int, metavar="N", help="use at most N training items (KNN)")
    evaluate.add_argument("--n-test", type=int, metavar="N", help="evaluate at most N items")
    evaluate.add_argument(
        "--num-samples",
        type=int,
        default=1000,
        metavar="S",
        help="importance samples per item for the NLL (default 1000)",
    )
    evaluate.add_argument(
        "--nll-refit",
        type=int,
        metavar="STEPS",
        help="the NLL's proposal: per-item Gaussians refitted to each posterior with STEPS Adam steps "
        "(0: the encoder itself; default: the encoder, refitted with 100 steps where its estimate is "
        "unreliable, more than 30%% of items with PSIS k-hat > 0.7)",
    )
    evaluate.add_argument(
        "--nll-ais",
        type=int,
        default=0,
        metavar="STEPS",
        help="estimate the NLL by annealed importance sampling with STEPS temperatures, from the "
        "proposal --nll-refit names (default: refitted with 100 steps): for encoders whose NLL stays "
        "unreliable with refitted proposals; costs about STEPS gradient passes per chain (0: off)",
    )
    evaluate.add_argument(
        "--nll-ais-chains", type=int, default=64, metavar="N", help="AIS chains per item (default 64)"
    )
    evaluate.add_argument("--json", metavar="PATH", help="where to write the metrics (default RUN_DIR/evaluation.json)")


def _encode_parser(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    encode = sub.add_parser(
        "encode",
        parents=[common],
        help="write the latent codes of data under a trained model",
        description="Encode data with the model of a run directory, its model.pt or a training checkpoint: "
        "the posterior means E[z|x] and, with --samples K, K draws z ~ q(z|x) per item, with the data's "
        "labels where it has them. A data file is encoded whole, in file order; a built-in data set "
        "(or the run's own data) is split as the run split it and --part is encoded.",
    )
    encode.add_argument("path", metavar="RUN_DIR_OR_CKPT")
    _data_arguments(encode)
    encode.add_argument(
        "--out",
        metavar="PATH",
        required=True,
        help=".npy (the means alone), .npz (means, samples, labels) or .csv (a header, one row per item)",
    )
    encode.add_argument("--samples", type=int, default=0, metavar="K", help="posterior draws per item (default 0)")
    encode.add_argument(
        "--part", choices=("test", "val", "train"), default="test", help="part of a split data set (default test)"
    )


def _compare_parser(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    compare = sub.add_parser(
        "compare",
        parents=[common],
        help="train several objectives over several seeds and compare them",
        description="Train SPEC with each objective and seed; print mean and std over seeds "
        "and write compare.json, compare.md and compare.png into --out.",
    )
    compare.add_argument("spec", metavar="SPEC", help="a spec name from the catalogue (e.g. toy4) or a .toml file")
    compare.add_argument(
        "--objectives",
        default=",".join(compared_objectives()),
        metavar="LIST",
        help=f"comma-separated objectives among {', '.join(OBJECTIVES)} (default {','.join(compared_objectives())})",
    )
    compare.add_argument("--seeds", type=int, default=3, metavar="N", help="seeds per objective: --seed .. --seed+N-1")
    _training_arguments(compare, objective=False)
    _data_arguments(compare)
    _cap_arguments(compare)
    compare.add_argument("--out", metavar="DIR", help="comparison directory (default runs/SPEC/compare)")


def _subparser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    """The parser of one subcommand (its errors print its own usage line)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[command]
    raise KeyError(command)


def _version() -> str:
    from pyromim import __version__

    return __version__
