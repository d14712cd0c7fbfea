"""A batch loader that prepares batches in background threads, deterministically.

Every random choice of an epoch (the shuffle, then each batch's crops, flips and colour noise) comes
from generators seeded by (seed, epoch) and (seed, epoch, batch index) alone. So a batch is the same
whichever worker makes it and whenever, and resuming at epoch e replays exactly the batches that an
uninterrupted run would have seen: the loader's whole random state is (seed, epoch).

The workers are threads: JPEG decoding in PIL and NumPy's array work release the GIL, and threads
share the in-memory image cache without copying it. Up to `workers + 1` batches are prepared ahead,
so the network does not wait on the data unless the data is slower than the network.
"""
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import numpy as np


class DataLoader:
    """Batches (x float32 (n, 3, s, s) or (n, 10, 3, s, s), y int64 (n,)) of `dataset`.

    dataset: anything with `__len__` and `batch(indices) -> (uint8 images, labels)` (an ImageFolder).
    transform: called as transform(images, rng) on each uint8 batch.
    shuffle: a new random order every epoch; drop_last: leave out a last, smaller batch.
    workers: background threads (0: prepare each batch in the calling thread, when it is needed).
    shard: (rank, ranks) for data-parallel training: `batch_size` is the global batch, and this loader
    serves the rank-th of `ranks` contiguous slices of each one, with the augmentation drawn for the
    whole batch (transform(images, rng, part=(first row, batch rows))), so that the ranks' slices put
    together are exactly the one-process batch.
    """

    def __init__(self, dataset, batch_size, transform, shuffle=False, seed=0, workers=2, drop_last=False,
                 shard=None):
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive int, got {batch_size!r}")
        if not isinstance(workers, int) or workers < 0:
            raise ValueError(f"DataLoader: workers must be an int >= 0, got {workers!r}")
        self.dataset, self.batch_size, self.transform = dataset, batch_size, transform
        if shard is not None and not (len(shard) == 2 and 0 <= shard[0] < shard[1]):
            raise ValueError(f"DataLoader: shard must be (rank, ranks) with 0 <= rank < ranks, got {shard!r}")
        self.shuffle, self.seed, self.workers, self.drop_last = shuffle, seed, workers, drop_last
        self.shard = shard

    def __len__(self):
        full, rest = divmod(len(self.dataset), self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def order(self, epoch):
        """The sample indices of `epoch`, in the order they are served."""
        if not self.shuffle:
            return np.arange(len(self.dataset))
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.dataset))

    def _make_batch(self, epoch, number, indices):
        rng = np.random.default_rng([self.seed, epoch, number, 1])   # this batch's augmentation draws
        if self.shard is None:
            images, labels = self.dataset.batch(indices)
            return self.transform(images, rng), labels
        rank, ranks = self.shard
        first, stop = len(indices) * rank // ranks, len(indices) * (rank + 1) // ranks
        images, labels = self.dataset.batch(indices[first:stop])
        return self.transform(images, rng, part=(first, len(indices))), labels

    def epoch(self, epoch):
        """Iterate over the batches of `epoch` (an int: it seeds the shuffle and the augmentation)."""
        order = self.order(epoch)
        jobs = [(epoch, number, order[start:start + self.batch_size])
                for number, start in enumerate(range(0, len(order), self.batch_size))][:len(self)]
        if self.workers == 0:
            for job in jobs:
                yield self._make_batch(*job)
            return
        with ThreadPoolExecutor(self.workers, thread_name_prefix="loader") as pool:
            pending = deque()
            try:
                for job in jobs:
                    pending.append(pool.submit(self._make_batch, *job))
                    if len(pending) > self.workers:
                        yield pending.popleft().result()
                while pending:
                    yield pending.popleft().result()
            finally:                      # a consumer that stops early: drop the batches not started
                for future in pending:
                    future.cancel()
