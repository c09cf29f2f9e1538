"""LightningDataModules: where text comes from, how it is tokenized, cached and batched."""
