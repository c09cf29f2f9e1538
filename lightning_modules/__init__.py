"""LightningModules (what trains): the shared base, the classifier, the masked LM, and their
parts: adapters (LoRA, freezing), the optimizer, packed attention."""
