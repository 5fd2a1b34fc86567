"""The data module shape every split-based task shares: three loaders that differ only by their split."""
from __future__ import annotations

import lightning as L
from torch.utils.data import DataLoader


class SplitDataModule(L.LightningDataModule):
    """Subclasses write split_loader(split) for "train", "val" and "test"; Lightning asks for the three loaders."""

    def split_loader(self, split: str) -> DataLoader:
        raise NotImplementedError

    def train_dataloader(self) -> DataLoader:
        return self.split_loader("train")

    def val_dataloader(self) -> DataLoader:
        return self.split_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self.split_loader("test")
