"""polyact.data: episode datasets on disk, one checksummed HDF5 file per episode plus a JSON manifest.

Write with `DatasetWriter`, read with `EpisodeDataset`, train with `WindowDataset` and
`TaskBalancedSampler`. Design and format: docs/storage.md. The torch-based classes are imported on
first use, so writing and inspecting datasets does not pay for importing torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from polyact.data.convert import convert_npz, export_npz
from polyact.data.episode import Episode
from polyact.data.format import FORMAT_VERSION, SUPPORTED_VERSIONS, EpisodeRecord
from polyact.data.info import format_info, verify_dataset
from polyact.data.reader import EpisodeDataset, open_dataset
from polyact.data.writer import DatasetWriter
from polyact.lazy import lazy_exports

if TYPE_CHECKING:
    from polyact.data.sampler import TaskBalancedSampler
    from polyact.data.windows import WindowBatch, WindowDataset, collate_windows

__all__ = [
    "FORMAT_VERSION",
    "SUPPORTED_VERSIONS",
    "DatasetWriter",
    "Episode",
    "EpisodeDataset",
    "EpisodeRecord",
    "TaskBalancedSampler",
    "WindowBatch",
    "WindowDataset",
    "collate_windows",
    "convert_npz",
    "export_npz",
    "format_info",
    "open_dataset",
    "verify_dataset",
]

_LAZY = {
    "WindowBatch": "windows",
    "WindowDataset": "windows",
    "collate_windows": "windows",
    "TaskBalancedSampler": "sampler",
}


__getattr__ = lazy_exports(__name__, _LAZY)
