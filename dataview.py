"""`polyact data view`: look at one episode of a dataset as a video, every camera above the actions and the
state plotted over the episode, with a cursor at the current step.

Recorded demonstrations go wrong in ways a table of statistics hides: a camera that froze, a gripper
command that never changes, actions that saturate at their bounds. One mp4 per episode shows them; `still`
writes a PNG of one step instead (lossless, for a README or a bug report).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from polyact.data import EpisodeDataset
from polyact.errors import ConfigError

CURSOR = np.array([220, 30, 30], np.uint8)
MIN_PLOT_WIDTH = 480  # pixels: narrower, the plot's labels and legends do not fit


@dataclass
class DataViewConfig:
    """`polyact data view path=DATASET [episode=0] [out=FILE.mp4] [still=STEP] [scale=4]`.

    out: the video (default `<dataset name>_episode_<n>.mp4` here); still: write a PNG of that step to
    `out` (default `...png`) instead of a video; scale: each camera pixel becomes scale x scale pixels.
    """

    path: str = ""
    episode: int = 0
    out: str = ""
    still: int = -1
    scale: int = 4

    def __post_init__(self) -> None:
        if not self.path:
            raise ConfigError("polyact data view needs path=DATASET")
        if self.scale < 1:
            raise ConfigError(f"scale must be >= 1, got {self.scale}")


def _plot(arrays: dict[str, np.ndarray], names: dict[str, list[str]], width: int, length: int):
    """The curves of `arrays` ((T, D) each, one panel per key) as an RGB image `width` pixels wide, and the
    pixel column of every step (T,)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dpi = 100
    fig, axes = plt.subplots(len(arrays), 1, figsize=(width / dpi, 1.6 * len(arrays)), dpi=dpi, sharex=True)
    axes = np.atleast_1d(axes)
    steps = np.arange(length)
    for ax, (key, values) in zip(axes, arrays.items(), strict=True):
        for column, label in zip(values.T, names[key], strict=True):
            ax.plot(steps, column, lw=1, label=label)
        ax.set_ylabel(key, fontsize=8)
        ax.tick_params(labelsize=7)
        columns = 1 + len(names[key]) // 9
        ax.legend(fontsize=6, ncol=columns, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
        ax.set_xlim(0, max(length - 1, 1))
    axes[-1].set_xlabel("step", fontsize=8)
    fig.tight_layout(pad=0.3)
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    columns = axes[-1].transData.transform(np.stack([steps, np.zeros(length)], axis=1))[:, 0]
    plt.close(fig)
    return image, np.clip(np.round(columns).astype(int), 0, image.shape[1] - 1)


def episode_frames(dataset: EpisodeDataset, episode: int, scale: int) -> np.ndarray:
    """(T, H, W, 3) uint8: the cameras side by side from the top left (each pixel scale x scale), the
    actions and the state plotted under them with a red cursor at each frame's step."""
    if not 0 <= episode < len(dataset):
        raise ConfigError(f"episode {episode} is not in {dataset.path}, which has episodes 0..{len(dataset) - 1}")
    cameras = [k for k in dataset.features if k.startswith("rgb/")]
    keys = cameras + (["state"] if "state" in dataset.features else [])
    arrays = dataset.episode_arrays(episode, keys=keys)
    length = len(arrays["action"])
    top = np.concatenate([arrays[f"obs/{c}"].repeat(scale, axis=1).repeat(scale, axis=2) for c in cameras], axis=2)
    spec = dataset.env_spec
    curves = {"action": arrays["action"].reshape(length, -1)}
    names = {"action": list(spec.action.names) if spec else [f"a{i}" for i in range(curves["action"].shape[1])]}
    if "state" in keys:
        curves["state"] = arrays["obs/state"].reshape(length, -1)
        names["state"] = list(spec.state_names) if spec else [f"s{i}" for i in range(curves["state"].shape[1])]
    plot, columns = _plot(curves, names, max(top.shape[2], MIN_PLOT_WIDTH), length)
    frames = np.zeros((length, top.shape[1] + plot.shape[0], plot.shape[1], 3), np.uint8)
    frames[:, : top.shape[1], : top.shape[2]] = top
    frames[:, top.shape[1] :] = plot
    frames[np.arange(length), top.shape[1] :, columns] = CURSOR
    return frames


def run(cfg: DataViewConfig) -> Path:
    """Write the episode's video (or the still) and say where."""
    from PIL import Image

    from polyact.eval.videos import write_mp4

    dataset = EpisodeDataset(cfg.path)
    frames = episode_frames(dataset, cfg.episode, cfg.scale)
    suffix = ".png" if cfg.still >= 0 else ".mp4"
    out = Path(cfg.out or f"{Path(cfg.path).resolve().name}_episode_{cfg.episode}{suffix}")
    if cfg.still >= 0:
        if cfg.still >= len(frames):
            raise ConfigError(f"still={cfg.still} is past the episode's last step, {len(frames) - 1}")
        Image.fromarray(frames[cfg.still]).save(out)
    else:
        write_mp4(out, frames, dataset.fps)
    print(f"{out}: episode {cfg.episode} ({len(frames)} steps, {frames.shape[2]}x{frames.shape[1]})")
    return out
