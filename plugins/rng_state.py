"""Every RNG that training draws from, saved in each checkpoint and restored on resume."""

import random

import numpy as np
import torch
from lightning import Callback


class RNGState(Callback):
    """So a resumed run draws the same dropout and masks as an uninterrupted one: Lightning
    saves this callback's `state_dict` in every checkpoint and hands it back on resume. The
    states are kept in types that `torch.load(weights_only=True)` reads."""

    def state_dict(self) -> dict:
        kind, keys, pos, has_gauss, cached = np.random.get_state()
        states = {"torch": torch.get_rng_state(), "python": random.getstate(),
                  "numpy": [kind, torch.from_numpy(keys.copy()), pos, has_gauss, cached]}
        if torch.cuda.is_available():
            states["cuda"] = torch.cuda.get_rng_state_all()
        return states

    def load_state_dict(self, states: dict) -> None:
        torch.set_rng_state(states["torch"])
        random.setstate(states["python"])
        kind, keys, pos, has_gauss, cached = states["numpy"]
        np.random.set_state((kind, keys.numpy(), pos, has_gauss, cached))
        if "cuda" in states and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(states["cuda"])
