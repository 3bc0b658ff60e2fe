"""The training loader: a packed set (wae_lib.data.layout) held in (GPU) memory and served as float batches.

Imports torch; the preparation modules never import this one, so their worker processes stay torch-free."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .layout import OUT_SIZE, DataError
from .packed import check_packed


class PackedImages:
    """A packed set held in memory as uint8 ``N x 3 x 64 x 64``, served as float32 [0, 1] batches.

    The file is read once. On CUDA the tensor lives on the GPU when it takes at most ``max_device_fraction``
    of the free memory (a full CelebA set is 2.4 GB), otherwise in pinned CPU memory with a double-buffered
    asynchronous copy per batch. No file I/O happens during training."""

    def __init__(self, source: str | Path | np.ndarray, device: str | Any = "cpu", *,
                 max_device_fraction: float = 0.5):
        if isinstance(source, np.ndarray):
            arr, name = source, "array"
        else:
            path = Path(source)
            if not path.is_file():
                raise FileNotFoundError(f"PackedImages: {path} does not exist (prepare it with `python -m "
                                        f"wae_lib data all --data-root DIR`)")
            arr, name = np.load(path), str(path)
        check_packed(arr, name)
        self.device = torch.device(device)
        self.on_device = True
        target = self.device
        if self.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self.device)
            if arr.nbytes > max_device_fraction * free:
                target, self.on_device = torch.device("cpu"), False
        self.data = torch.empty((len(arr), 3, OUT_SIZE, OUT_SIZE), dtype=torch.uint8, device=target,
                                pin_memory=not self.on_device)
        for i in range(0, len(arr), 8192):  # NHWC -> NCHW in blocks: no second full-size copy
            blk = torch.from_numpy(np.ascontiguousarray(arr[i:i + 8192]))
            self.data[i:i + len(blk)] = blk.to(target).permute(0, 3, 1, 2)
        self._staging: list[Any] = []
        self._events: list[Any] = []
        self._turn = 0

    def __len__(self) -> int:
        return self.data.shape[0]

    def __repr__(self) -> str:
        where = "device" if self.on_device else "pinned CPU"
        return f"PackedImages({len(self)} images, {where}, serving {self.device})"

    def _gather_pinned(self, idx):
        """Index on the CPU into a pinned staging buffer and copy asynchronously; two buffers alternate, each
        reused only after its previous copy finished."""
        n = len(idx)
        k = self._turn = (self._turn + 1) % 2
        if len(self._staging) < 2 or self._staging[k].shape[0] < n:
            self._staging = [torch.empty((n, 3, OUT_SIZE, OUT_SIZE), dtype=torch.uint8, pin_memory=True)
                             for _ in range(2)]
            self._events = [None, None]
        if self._events[k] is not None:
            self._events[k].synchronize()
        buf = self._staging[k][:n]
        torch.index_select(self.data, 0, idx, out=buf)
        out = buf.to(self.device, non_blocking=True)
        ev = torch.cuda.Event()
        ev.record()
        self._events[k] = ev
        return out

    def batch(self, indices) -> Any:
        """float32 [0, 1] images ``B x 3 x 64 x 64`` on the device, for these indices."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        if self.on_device:
            x = self.data.index_select(0, idx.to(self.data.device))
        else:
            x = self._gather_pinned(idx.cpu())
        return x.float().div_(255.0)

    def sample(self, batch_size: int, generator: Any = None, *, hflip: bool = False) -> tuple[Any, Any]:
        """(indices, images): ``batch_size`` uniform draws with replacement; ``hflip`` flips each image with p=0.5."""
        gdev = generator.device if generator is not None else torch.device("cpu")
        idx = torch.randint(len(self), (batch_size,), generator=generator, device=gdev)
        x = self.batch(idx)
        if hflip:
            flip = (torch.rand(batch_size, generator=generator, device=gdev) < 0.5).to(x.device)
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
        return idx, x

    def epoch(self, batch_size: int, generator: Any = None, *, drop_last: bool = True) -> Iterator[tuple[Any, Any]]:
        """One pass in a random order: (indices, images) per batch."""
        perm = torch.randperm(len(self), generator=generator)
        stop = len(perm) - (len(perm) % batch_size if drop_last else 0)
        for i in range(0, stop, batch_size):
            idx = perm[i:i + batch_size]
            yield idx, self.batch(idx)


class TensorImages:
    """An in-memory N x 3 x 64 x 64 float tensor in [0, 1] with PackedImages' ``batch(indices)``."""

    def __init__(self, images: torch.Tensor):
        if images.dim() != 4 or images.shape[1:] != (3, 64, 64):
            raise DataError(f"training images must be N x 3 x 64 x 64, got {tuple(images.shape)}")
        self.data = images

    def __len__(self) -> int:
        return len(self.data)

    def batch(self, indices) -> torch.Tensor:
        return self.data[torch.as_tensor(indices, dtype=torch.long, device=self.data.device)].float()
