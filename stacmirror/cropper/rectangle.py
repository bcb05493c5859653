"""The largest axis-aligned rectangle inside a stack's common valid area, on the pixel lattice.

The common area is described row by row on the stack's 30 m lattice: for each lattice row, the
first and last column that is valid in *every* scene (``left``/``right``; ``left > right`` means
no valid column). For a band of rows ``i..j`` the widest rectangle spans
``max(left[i..j])`` to ``min(right[i..j])``, so scanning every pair of rows with running
max/min gives the exact optimum on the lattice for any shape whose rows are single intervals
(intersections of Landsat footprints are convex, hence such). Vectorised, a 7 000-row stack
takes well under a second.

For areas whose rows split into several intervals (a non-convex AOI), :func:`largest_in_mask`
works on a boolean mask with the row-histogram algorithm, on cells of ``k`` pixels when the mask
is large: always inside, within ``k`` pixels of the optimum.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ROW_BLOCK = 256


@dataclass(frozen=True)
class Rect:
    """Rows ``row0 <= r < row1`` and columns ``col0 <= c < col1`` of the stack lattice."""

    row0: int
    row1: int
    col0: int
    col1: int

    @property
    def height(self) -> int:
        return max(0, self.row1 - self.row0)

    @property
    def width(self) -> int:
        return max(0, self.col1 - self.col0)

    @property
    def area(self) -> int:
        return self.height * self.width


EMPTY = Rect(0, 0, 0, 0)


def largest_in_rows(left: np.ndarray, right: np.ndarray) -> Rect:
    """Largest rectangle given each row's valid column interval ``[left, right]`` (inclusive)."""
    left = np.asarray(left, dtype=np.int64)
    right = np.asarray(right, dtype=np.int64)
    n = len(left)
    best, best_area = EMPTY, 0
    for i in range(n):
        if left[i] > right[i] or (n - i) * (right[i] - left[i] + 1) <= best_area:
            continue  # empty, or cannot beat the best even at full height
        lo = np.maximum.accumulate(left[i:])
        hi = np.minimum.accumulate(right[i:])
        width = hi - lo + 1
        # once a band has no common column it never gets one back: stop there
        dead = np.flatnonzero(width <= 0)
        stop = dead[0] if dead.size else n - i
        if stop == 0:
            continue
        heights = np.arange(1, stop + 1)
        areas = width[:stop] * heights
        k = int(np.argmax(areas))
        if areas[k] > best_area:
            best_area = int(areas[k])
            best = Rect(i, i + k + 1, int(lo[k]), int(hi[k]) + 1)
    return best


def _largest_in_histogram(heights: np.ndarray) -> tuple[int, int, int]:
    """(area, first column, width) of the largest rectangle under a histogram."""
    best = (0, 0, 0)
    stack: list[int] = []
    extended = np.append(heights, 0)
    for col, h in enumerate(extended):
        while stack and extended[stack[-1]] >= h:
            top = stack.pop()
            start = stack[-1] + 1 if stack else 0
            area = int(extended[top]) * (col - start)
            if area > best[0]:
                best = (area, start, col - start)
        stack.append(col)
    return best


def largest_in_mask(mask: np.ndarray, max_cells: int = 600) -> Rect:
    """Largest all-True rectangle of a boolean mask (cells of k x k pixels when it is large)."""
    rows, cols = mask.shape
    k = max(1, int(np.ceil(max(rows, cols) / max_cells)))
    if k > 1:
        pad_r, pad_c = (-rows) % k, (-cols) % k
        padded = np.pad(mask, ((0, pad_r), (0, pad_c)), constant_values=False)
        cells = padded.reshape(padded.shape[0] // k, k, padded.shape[1] // k, k).all(axis=(1, 3))
    else:
        cells = mask
    heights = np.zeros(cells.shape[1], dtype=np.int64)
    best, best_rect = 0, EMPTY
    for r in range(cells.shape[0]):
        heights = np.where(cells[r], heights + 1, 0)
        area, start, width = _largest_in_histogram(heights)
        if area > best:
            height = area // width
            best = area
            best_rect = Rect((r + 1 - height) * k, (r + 1) * k, start * k, (start + width) * k)
    return best_rect


def row_intervals(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and last True column of each row (``left > right`` for an empty row)."""
    any_valid = mask.any(axis=1)
    first = np.argmax(mask, axis=1)
    last = mask.shape[1] - 1 - np.argmax(mask[:, ::-1], axis=1)
    first = np.where(any_valid, first, 1)
    last = np.where(any_valid, last, 0)
    return first.astype(np.int64), last.astype(np.int64)


def rows_are_intervals(mask: np.ndarray) -> bool:
    """True when no row of the mask has a gap between its first and last True column."""
    first, last = row_intervals(mask)
    counts = mask.sum(axis=1)
    return bool(np.all((counts == 0) | (counts == last - first + 1)))
