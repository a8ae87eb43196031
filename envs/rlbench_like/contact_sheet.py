"""Save a PNG of all five cameras for every task, one row per task, to check the scene by eye.

    python -m polyact.envs.rlbench_like.contact_sheet [--out docs/images/rlbench_like_contact_sheet.png]

Each row is the first frame of seed 0 (train variation), labelled with the task and its instruction;
the fast render quality and 128x128 are what datasets get.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from polyact.envs.config import EnvConfig
from polyact.envs.rlbench_like import SUITE
from polyact.envs.rlbench_like.scene import CAMERAS

LABEL_HEIGHT = 14


def task_row(task: str, size: int, steps: int = 0) -> Image.Image:
    """One task's five camera images side by side under a label; `steps` expert steps in, if any."""
    env = SUITE.make_env(task, EnvConfig(tasks=task, height=size, width=size))
    try:
        obs, info = env.reset(seed=0)
        expert = SUITE.make_expert(env)
        for _ in range(steps):
            obs, _, _, _, info = env.step(expert.act(obs, info))
        images = np.concatenate([obs[f"rgb/{cam}"] for cam in CAMERAS], axis=1)
        row = Image.new("RGB", (images.shape[1], size + LABEL_HEIGHT), "white")
        row.paste(Image.fromarray(images), (0, LABEL_HEIGHT))
        ImageDraw.Draw(row).text((2, 1), f"{task}: {env.instruction}", fill="black")
        return row
    finally:
        env.close()


def contact_sheet(tasks: tuple[str, ...], size: int = 128, steps: int = 0) -> Image.Image:
    rows = [task_row(t, size, steps) for t in tasks]
    header = Image.new("RGB", (rows[0].width, LABEL_HEIGHT), "white")
    draw = ImageDraw.Draw(header)
    for i, cam in enumerate(CAMERAS):
        draw.text((i * size + 2, 1), cam, fill="black")
    sheet = Image.new("RGB", (rows[0].width, LABEL_HEIGHT + sum(r.height for r in rows)), "white")
    sheet.paste(header, (0, 0))
    y = LABEL_HEIGHT
    for r in rows:
        sheet.paste(r, (0, y))
        y += r.height
    return sheet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("docs/images/rlbench_like_contact_sheet.png"))
    parser.add_argument("--tasks", nargs="*", default=list(SUITE.tasks))
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=0, help="expert steps before the snapshot")
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    contact_sheet(tuple(args.tasks), args.size, args.steps).save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
