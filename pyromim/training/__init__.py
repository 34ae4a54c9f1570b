"""Training Pyro model/guide pairs with Lightning: warm-ups, checkpoints, resume, many devices."""

from pyromim.training.config import TrainConfig
from pyromim.training.data_module import SeededDataModule
from pyromim.training.diagnostics import NonFiniteLossError, nonfinite_terms
from pyromim.training.fit import FitResult, fit, load_trained
from pyromim.training.interrupts import TrainingInterrupted
from pyromim.training.lightning_checkpoints import AtomicCheckpointIO, load_checkpoint, save_atomically
from pyromim.training.module import PyroLightningModule
from pyromim.training.params import StoreParameters
from pyromim.training.schedules import NoamFactor, beta_factor

__all__ = [
    "AtomicCheckpointIO",
    "FitResult",
    "NoamFactor",
    "NonFiniteLossError",
    "PyroLightningModule",
    "SeededDataModule",
    "StoreParameters",
    "TrainConfig",
    "TrainingInterrupted",
    "beta_factor",
    "fit",
    "load_checkpoint",
    "load_trained",
    "nonfinite_terms",
    "save_atomically",
]
