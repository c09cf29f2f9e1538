"""Trainer plug-ins: callbacks, the logger and checkpoint IO that configs/defaults.yaml wires in."""
