"""Predictions over a stream of texts of any length: `chunk_size` texts are read at a time,
tokenized, sorted by length and cut into batches, so that a batch holds texts of about one length
(little padding, or none where the runtime packs); each text's probabilities go back to its input
place before the next chunk is read. Memory holds one chunk, however long the stream."""

from collections.abc import Callable, Iterable, Iterator
from itertools import islice

import numpy as np


def chunks(items: Iterable, size: int) -> Iterator[list]:
    """`items` in lists of `size` (the last may be shorter), read as they are needed."""
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def length_batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Positions of the texts, shortest first, in batches of `batch_size`."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]


def softmax(logits: np.ndarray) -> np.ndarray:
    exp = np.exp(logits - logits.max(-1, keepdims=True))
    return exp / exp.sum(-1, keepdims=True)


class Predictor:
    """A runtime (`deploy.runtimes`) with the tokenizer of its export: texts in, each class's
    probability out, in input order.

    Args:
        runtime: turns a batch of token ids into logits.
        tokenizer: the export's tokenizer.
        max_length: tokens per text at most (longer texts are truncated, as in training).
        batch_size: texts per batch.
        chunk_size: texts read, sorted by length and held in memory at a time.
    """

    def __init__(self, runtime, tokenizer, max_length: int, batch_size: int = 32, chunk_size: int = 1024):
        self.runtime, self.tokenizer = runtime, tokenizer
        self.max_length, self.batch_size, self.chunk_size = max_length, batch_size, chunk_size
        self.cut = 0  # texts cut at max_length so far

    def logits(self, texts: list[str], progress: Callable[[int], object] | None = None) -> np.ndarray:
        """[texts, classes] logits of one chunk, in the order of `texts`; a runtime that chooses how
        it runs (`prepare`) does so on the first chunk."""
        encoded = self.tokenizer(texts, truncation=True, max_length=self.max_length,
                                 return_attention_mask=False, return_token_type_ids=False)
        ids = encoded["input_ids"]
        self.cut += sum(bool(encoding.overflowing) for encoding in encoded.encodings or ())
        if hasattr(self.runtime, "prepare"):
            self.runtime.prepare(ids)
        out = None
        for batch in length_batches([len(i) for i in ids], self.batch_size):
            logits = self.runtime.logits([ids[i] for i in batch])
            if out is None:
                out = np.empty((len(texts), logits.shape[-1]), dtype=np.float32)
            out[batch] = logits
            if progress:
                progress(len(batch))
        return out

    def stream(self, items: Iterable, progress: Callable[[int], object] | None = None,
               text: Callable[[object], str] = str) -> Iterator[tuple[list, np.ndarray]]:
        """(items, probabilities of their `text`) a chunk at a time, in input order."""
        for chunk in chunks(items, self.chunk_size):
            yield chunk, softmax(self.logits([text(item) for item in chunk], progress))

    def labels(self, texts: Iterable[str], progress: Callable[[int], object] | None = None) -> np.ndarray:
        """The predicted class id of every text."""
        found = [self.logits(chunk, progress).argmax(-1) for chunk in chunks(texts, self.chunk_size)]
        return np.concatenate(found) if found else np.empty(0, dtype=np.int64)
