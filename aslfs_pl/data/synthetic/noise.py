"""Random motion and jitter shared by the body parts: slow wobbles and cheap Gaussian noise.

Where a hand goes missing is :func:`aslfs_pl.data.synthetic.difficulty.bursts`: the ``tracking`` factor
draws its losses the same way, so it lives beside that factor.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from aslfs_pl.data.synthetic.hands import SHAPE_SEED


def smooth_noise(rng: np.random.Generator, t: np.ndarray, amp: float, dims: int) -> np.ndarray:
    """A slow random wobble (sum of two sinusoids per dimension); (T,) -> (T, dims)."""
    out = np.zeros((len(t), dims))
    for _ in range(2):
        period = rng.uniform(25.0, 90.0, dims)
        phase = rng.uniform(0.0, 2 * np.pi, dims)
        out += amp * np.sin(2 * np.pi * t[:, None] / period + phase)
    return out / 2


@lru_cache(maxsize=1)
def _noise_bank() -> np.ndarray:
    """A fixed block of standard-normal float32 noise, sliced for cheap face jitter; (2**22,)."""
    return np.random.default_rng(SHAPE_SEED + 2).standard_normal(1 << 22, dtype=np.float32)


def bank_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: np.float32) -> np.ndarray:
    """Gaussian noise of ``shape`` and scale ``sigma`` from a random slice of the noise bank.

    The face has 468 points x 3 axes per frame; drawing fresh normals for it would dominate the
    generator's time, so a random slice of one fixed block stands in for them.
    """
    bank = _noise_bank()
    need = int(np.prod(shape))
    if need > len(bank):
        return rng.standard_normal(shape, dtype=np.float32) * sigma
    start = int(rng.integers(0, len(bank) - need + 1))
    return bank[start : start + need].reshape(shape) * sigma
