"""LightningModules and the pieces they share: backbone loading, optimizer, callbacks."""
