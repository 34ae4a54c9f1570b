"""Batches for training and validation, shuffled reproducibly on any number of devices."""

from __future__ import annotations

import math
from collections.abc import Iterator

import lightning.pytorch as pl
import torch
from torch.utils.data import BatchSampler, DataLoader, DistributedSampler

from pyromim.data import ArrayDataset


class TensorItems(torch.utils.data.Dataset):
    """Rows of a tensor as items (``TensorDataset`` would wrap each in a tuple)."""

    def __init__(self, x: torch.Tensor) -> None:
        self.x = x

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.x[index]


class _Rows(torch.utils.data.Dataset):
    """A tensor's rows fetched a batch at a time: one indexing operation per batch
    instead of one item fetch per row and a stack (the same tensor)."""

    def __init__(self, x: torch.Tensor) -> None:
        self.x = x

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __getitem__(self, rows: torch.Tensor | list[int]) -> torch.Tensor:
        return self.x[torch.as_tensor(rows)]


class _Batches(BatchSampler):
    """Index batches of a ``DistributedSampler`` as index tensors (the sampler's order
    converted once per epoch, not a list of ints per batch), passing Lightning's
    ``set_epoch`` on."""

    sampler: DistributedSampler

    def __iter__(self) -> Iterator[torch.Tensor]:  # type: ignore[override]
        # a generator, as BatchSampler's: the order is drawn at the first batch, after
        # Lightning's set_epoch (a resumed run creates the iterator before it)
        batches = _sampler_order(self.sampler).split(self.batch_size)
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches = batches[:-1]
        yield from batches

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)


def _sampler_order(sampler: DistributedSampler) -> torch.Tensor:
    """The indices ``sampler`` yields this epoch, as one tensor.

    ``DistributedSampler`` draws its permutation as a tensor and converts it to a
    list of ints (measured once: 2 ms for 24576 items, each epoch); the same permutation,
    padding and stride are applied here to the tensor itself. A subclass of it is
    iterated as it is.
    """
    if type(sampler) is not DistributedSampler:
        return torch.tensor(list(sampler), dtype=torch.long)
    n = len(sampler.dataset)  # type: ignore[arg-type]
    if sampler.shuffle:
        generator = torch.Generator()
        generator.manual_seed(sampler.seed + sampler.epoch)
        order = torch.randperm(n, generator=generator)
    else:
        order = torch.arange(n)
    if sampler.drop_last:
        order = order[: sampler.total_size]
    elif sampler.total_size > n:  # pad by repeating the order from its start, as the sampler does
        order = torch.cat([order, order.repeat(math.ceil((sampler.total_size - n) / n))[: sampler.total_size - n]])
    return order[sampler.rank : sampler.total_size : sampler.num_replicas]


class SeededDataModule(pl.LightningDataModule):
    """Train/validation loaders over in-memory datasets.

    Each process gets a ``DistributedSampler`` built with the trainer's world
    size and rank (one process: the whole set); the training order of epoch
    ``e`` is the permutation seeded by ``seed + e`` (Lightning calls
    ``set_epoch``), identical in an uninterrupted and a resumed run. Items of a
    tensor-backed set (:class:`~pyromim.data.ArrayDataset`, a tensor given to
    :func:`~pyromim.training.fit`) are fetched a batch at a time. Validation
    batches hold ``val_batch_size`` items (default ``batch_size``).
    """

    def __init__(
        self,
        train: torch.utils.data.Dataset,
        val: torch.utils.data.Dataset | None,
        batch_size: int,
        seed: int,
        val_batch_size: int | None = None,
    ) -> None:
        super().__init__()
        self.train = train
        self.val = val
        self.batch_size = batch_size
        self.val_batch_size = batch_size if val_batch_size is None else val_batch_size
        self.seed = seed

    def _loader(self, data: torch.utils.data.Dataset, shuffle: bool, batch_size: int) -> DataLoader:
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
        if isinstance(data, (ArrayDataset, TensorItems)):
            batches = _Batches(sampler, batch_size, drop_last=False)
            return DataLoader(_Rows(data.x), sampler=batches, batch_size=None, generator=generator)
        return DataLoader(data, batch_size=batch_size, sampler=sampler, generator=generator)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train, shuffle=True, batch_size=self.batch_size)

    def val_dataloader(self) -> DataLoader | list:
        if self.val is None:
            return []
        return self._loader(self.val, shuffle=False, batch_size=self.val_batch_size)
