"""Data for pyromim: built-in toy, digits and sentence sets, user files and text, splits and fit checks."""

from pyromim.data.checks import DataMismatchError, check_data_fits
from pyromim.data.dataset import DATA_KINDS, ArrayDataset, DataKind, DataSplits, infer_kind
from pyromim.data.digits import digits
from pyromim.data.files import DataFileError, load_file, read_idx
from pyromim.data.registry import BUILTIN_DATASETS, load_data
from pyromim.data.sentences import SentenceGenerator, synthetic_sentences
from pyromim.data.splits import split_dataset
from pyromim.data.text import (
    SPECIAL_TOKENS,
    TextDataWarning,
    TextFileError,
    Vocabulary,
    VocabularyMismatchError,
    load_text,
    tokenize,
)
from pyromim.data.toy import toy4, toy4_20, toy4_means

__all__ = [
    "ArrayDataset",
    "BUILTIN_DATASETS",
    "DATA_KINDS",
    "DataFileError",
    "DataKind",
    "DataMismatchError",
    "DataSplits",
    "SPECIAL_TOKENS",
    "SentenceGenerator",
    "TextDataWarning",
    "TextFileError",
    "Vocabulary",
    "VocabularyMismatchError",
    "check_data_fits",
    "digits",
    "infer_kind",
    "load_data",
    "load_file",
    "load_text",
    "read_idx",
    "split_dataset",
    "synthetic_sentences",
    "tokenize",
    "toy4",
    "toy4_20",
    "toy4_means",
]
