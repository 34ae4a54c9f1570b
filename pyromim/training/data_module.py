"""Batches for training and validation, shuffled reproducibly on any number of devices."""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, DistributedSampler


class SeededDataModule(pl.LightningDataModule):
    """Train/validation loaders over in-memory datasets.

    Each process gets a ``DistributedSampler`` built with the trainer's world
    size and rank (one process: the whole set); the training order of epoch
    ``e`` is the permutation seeded by ``seed + e`` (Lightning calls
    ``set_epoch``), identical in an uninterrupted and a resumed run.
    """

    def __init__(
        self,
        train: torch.utils.data.Dataset,
        val: torch.utils.data.Dataset | None,
        batch_size: int,
        seed: int,
    ) -> None:
        super().__init__()
        self.train = train
        self.val = val
        self.batch_size = batch_size
        self.seed = seed

    def _loader(self, data: torch.utils.data.Dataset, shuffle: bool) -> DataLoader:
        trainer = self.trainer
        if trainer is None:
            raise RuntimeError("the data module makes loaders only once attached to a Lightning Trainer")
        sampler: DistributedSampler = DistributedSampler(
            data,
            num_replicas=trainer.world_size,
            rank=trainer.global_rank,
            shuffle=shuffle,
            seed=self.seed,
        )
        # a private generator: creating an iterator draws a base seed from the
        # loader's generator, which must not touch the global RNG that the
        # training module reseeds per epoch (iterators are created at different
        # moments in a fresh and a resumed run)
        generator = torch.Generator().manual_seed(self.seed)
        return DataLoader(data, batch_size=self.batch_size, sampler=sampler, generator=generator)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train, shuffle=True)

    def val_dataloader(self) -> DataLoader | list:
        return [] if self.val is None else self._loader(self.val, shuffle=False)
