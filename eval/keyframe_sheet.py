"""A contact sheet of one keyframe episode: every pose the policy chose, drawn over its cameras.

    python -m polyact.eval.keyframe_sheet --policy runs/rlb/train/policy --task open_drawer --seed 1000000 \\
        --out docs/images/keyframe_episode.png          # --policy expert: the scripted expert's keyframes

One row per keyframe action: each camera's image at the moment the action was chosen, with the chosen
tcp position as a ring (green: gripper open after the move, red: closed), the fingers' approach axis as
a line from it (5 cm along the gripper's pointing direction) and the finger axis as a short bar; the row
label gives the outcome (reached or not, position error, control steps) and the task's success.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mujoco
import numpy as np
from PIL import Image, ImageDraw

from polyact.envs.config import EnvConfig
from polyact.envs.registry import make_env, make_expert
from polyact.envs.rlbench_like.motion import action_pose
from polyact.envs.rlbench_like.rotations import euler_to_quat

SCALE = 2  # draw on images upscaled this much, so a 64x64 camera stays legible
LABEL_HEIGHT = 14


def project(point: np.ndarray, intrinsics: np.ndarray, extrinsics: np.ndarray) -> tuple[float, float] | None:
    """Pixel (u, v) of a world point in a camera with OpenCV-convention K and camera-to-world pose, or
    None behind the camera."""
    rotation, origin = extrinsics[:3, :3], extrinsics[:3, 3]
    p = rotation.T @ (np.asarray(point, np.float64) - origin)
    if p[2] <= 1e-6:
        return None
    uvw = intrinsics @ p
    return float(uvw[0] / uvw[2]), float(uvw[1] / uvw[2])


def draw_pose(image: np.ndarray, action: np.ndarray, intrinsics: np.ndarray, extrinsics: np.ndarray) -> Image.Image:
    """The camera image, upscaled, with the keyframe pose of `action` drawn over it."""
    pos, _, gripper = action_pose(action)
    axes = np.zeros(9)
    mujoco.mju_quat2Mat(axes, euler_to_quat(np.asarray(action[3:6], np.float64)))
    axes = axes.reshape(3, 3)  # columns: the tcp's x, y (the finger axis) and z in the world
    pointing = -axes[:, 2]  # identity points straight down: the approach axis is the tcp's -z
    img = Image.fromarray(image).resize((image.shape[1] * SCALE, image.shape[0] * SCALE), Image.NEAREST)
    draw = ImageDraw.Draw(img)
    colour = (220, 30, 30) if gripper > 0 else (30, 200, 60)
    centre = project(pos, intrinsics, extrinsics)
    if centre is None:
        return img
    cu, cv = centre[0] * SCALE, centre[1] * SCALE
    for end, width in ((pos - 0.05 * pointing, 2), (pos + 0.03 * axes[:, 1], 1), (pos - 0.03 * axes[:, 1], 1)):
        tip = project(end, intrinsics, extrinsics)
        if tip is not None:
            draw.line([(cu, cv), (tip[0] * SCALE, tip[1] * SCALE)], fill=colour, width=width)
    draw.ellipse([cu - 4, cv - 4, cu + 4, cv + 4], outline=colour, width=2)
    return img


def keyframe_episode_sheet(
    env: Any, act: Callable[[dict[str, Any], dict[str, Any]], np.ndarray], seed: int, cameras: tuple[str, ...]
) -> Image.Image:
    """Run one keyframe episode from `seed` with `act(obs, info)` and draw each chosen pose."""
    obs, info = env.reset(seed=seed)
    rows = []
    for i in range(env.contract.max_episode_steps):
        action = np.asarray(act(obs, info), np.float32)
        panels = [draw_pose(obs[f"rgb/{c}"], action, obs[f"intrinsics/{c}"], obs[f"extrinsics/{c}"]) for c in cameras]
        obs, _, _, truncated, info = env.step(action)
        k = info["keyframe"]
        outcome = "stopped on success" if k["stopped_on_success"] else "reached" if k["reached"] else "NOT reached"
        label = (
            f"{i + 1}: {outcome} ({100 * k['pos_error']:.1f} cm, "
            f"{k['control_steps']} steps), gripper {'close' if action[-1] > 0 else 'open'}"
            + (", SUCCESS" if info["success"] else "")
        )
        rows.append((panels, label))
        if info["success"] or truncated:
            break
    width = sum(p.width for p in rows[0][0])
    height = rows[0][0][0].height + LABEL_HEIGHT
    sheet = Image.new("RGB", (width, LABEL_HEIGHT + height * len(rows)), "white")
    ImageDraw.Draw(sheet).text((2, 1), f"{env.task} seed {seed}: {env.instruction}", fill="black")
    for r, (panels, label) in enumerate(rows):
        y = LABEL_HEIGHT + r * height
        ImageDraw.Draw(sheet).text((2, y + 1), label, fill="black")
        x = 0
        for panel in panels:
            sheet.paste(panel, (x, y + LABEL_HEIGHT))
            x += panel.width
    return sheet


def _policy_actor(path: str) -> tuple[Callable[[dict[str, Any], dict[str, Any]], np.ndarray], Any]:
    from polyact.policies import VLAPolicy

    policy = VLAPolicy.from_pretrained(path)
    policy.eval()
    return (lambda obs, info: policy.predict_chunk(obs)[0, 0]), policy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policy", required=True, help="a checkpoint directory, or 'expert'")
    parser.add_argument("--task", required=True)
    parser.add_argument("--seed", type=int, default=1_000_000)
    parser.add_argument("--cameras", nargs="*", default=[], help="default: the policy's (expert: front, wrist)")
    parser.add_argument("--size", type=int, default=64, help="image size for the expert (a policy uses its own)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.policy == "expert":
        cameras = tuple(args.cameras or ("front", "wrist"))
        env = make_env(args.task, EnvConfig(tasks=args.task, cameras=list(cameras), height=args.size,
                                            width=args.size, action_mode="keyframe"))  # fmt: skip
        expert = make_expert(env)
        expert.reset()
        act = expert.act
    else:
        act, policy = _policy_actor(args.policy)
        c = policy.config
        cameras = tuple(args.cameras or c.cameras)
        env = make_env(args.task, EnvConfig(tasks=args.task, cameras=list(c.cameras), height=c.image_height,
                                            width=c.image_width, action_mode="keyframe"))  # fmt: skip
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        keyframe_episode_sheet(env, act, args.seed, cameras).save(args.out)
    finally:
        env.close()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
