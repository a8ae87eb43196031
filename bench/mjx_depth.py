"""Low-resolution depth images of one rlbench_like camera from `mujoco.mjx.ray`, against the CPU renderer's.

Per image size and batch size N, one jitted function casts a ray through every pixel's centre, vmapped
over the pixels and over the N environments (float64, as MJXBatch), from the camera's pose in the data;
each ray's direction has unit depth in the camera frame, so the distance mjx.ray returns is the pixel's
z-depth, the contract's depth. Its first call (trace and compile) is timed apart. The states are N seeds'
reset layouts of the MJX model, posed on the CPU (mj_forward) and put on the device (mjx.put_data), so
only ray casting is timed. In the same run, at the same size and on the same states: the CPU EGL renderer
(envs/rendering.py, fast quality, RGB and depth from one pass as the envs render them) and MuJoCo's C ray
caster (mj_multiRay, the same rays). Error: |MJX - renderer| in metres on the pixels where both hit a
geom; the C rays' geom ids tell which of the pixels off by more than 1 cm are on cylinders.

    python -m polyact.bench.mjx_depth [--task reach_target] [--camera front] [--sizes 16 32] [--envs 1 4]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from functools import partial

import mujoco
import numpy as np

from polyact.bench.common import header
from polyact.contract import intrinsics_from_fovy
from polyact.envs.rendering import Renderer
from polyact.envs.rlbench_like import TASKS
from polyact.envs.rlbench_like.mjx.batch import MJXBatch

# the geom groups MuJoCo's renderer shows by default (groups 0-2): the rays see what the camera sees
RENDERED_GROUPS = tuple(int(g) for g in mujoco.MjvOption().geomgroup)
OFF = 0.01  # m: a pixel this far from the renderer's depth counts as wrong


def pixel_rays(fovy: float, size: int) -> np.ndarray:
    """(size * size, 3) ray directions through the pixel centres, row-major, in MuJoCo's camera axes
    (looking down -z, y up), with unit depth (z = -1): a ray's distance is then the pixel's z-depth."""
    k = intrinsics_from_fovy(fovy, size, size).astype(np.float64)
    rows, cols = np.mgrid[0:size, 0:size] + 0.5
    x, y = (cols - k[0, 2]) / k[0, 0], (rows - k[1, 2]) / k[1, 1]  # OpenCV axes: x right, y down
    return np.stack([x, -y, -np.ones_like(x)], axis=-1).reshape(-1, 3)


def mjx_depth(batch: MJXBatch, camera: int, size: int) -> Callable:
    """A jitted function: MJX data of N environments -> their depth images (N, size, size), -1 where a
    ray hits nothing."""
    import jax
    import jax.numpy as jnp
    from mujoco import mjx

    mx = mjx.put_model(batch.model)  # a constant of the compiled function, as in MJXBatch
    rays = jnp.asarray(pixel_rays(float(batch.model.cam_fovy[camera]), size))

    def one(d: mjx.Data) -> jax.Array:
        origin, vecs = d.cam_xpos[camera], rays @ d.cam_xmat[camera].T
        dist, _ = jax.vmap(lambda v: mjx.ray(mx, d, origin, v, RENDERED_GROUPS))(vecs)
        return dist.reshape(size, size)

    return jax.jit(jax.vmap(one))


def c_rays(model: mujoco.MjModel, data: mujoco.MjData, camera: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """MuJoCo's C ray caster on the same rays: (depth, geom id) images, -1 where nothing is hit."""
    rays = pixel_rays(float(model.cam_fovy[camera]), size) @ data.cam_xmat[camera].reshape(3, 3).T
    geom = np.zeros(len(rays), np.int32)
    dist = np.zeros(len(rays))
    groups = np.array(RENDERED_GROUPS, np.uint8)
    mujoco.mj_multiRay(model, data, data.cam_xpos[camera], rays.ravel(), groups, 1, -1, geom, dist, len(rays), 1e6)
    return dist.reshape(size, size), geom.reshape(size, size)


def frames_per_second(render: Callable[[mujoco.MjData], object], datas: list[mujoco.MjData], reps: int) -> float:
    """One frame of each state, `reps` times over."""
    start = time.perf_counter()
    for _ in range(reps):
        for data in datas:
            render(data)
    return len(datas) * reps / (time.perf_counter() - start)


def reset_states(batch: MJXBatch, n: int) -> list[mujoco.MjData]:
    """Seeds 0 .. n-1 laid out by the task's reset on the MJX model (MJXBatch.layout), posed on the CPU."""
    datas = []
    for seed in range(n):
        data = mujoco.MjData(batch.model)
        for field, value in batch.layout(seed, {})[2].items():
            getattr(data, field)[:] = value
        mujoco.mj_forward(batch.model, data)
        datas.append(data)
    return datas


def errors(depth: np.ndarray, rendered: np.ndarray, far: float) -> tuple[np.ndarray, np.ndarray, int]:
    """(|depth - rendered| on the pixels both hit, the mask of those pixels, pixels hit by one only);
    depth is -1 where its ray hits nothing, the renderer's depth is its far plane there."""
    ray_hit, render_hit = depth >= 0, rendered < far * 0.999
    both = ray_hit & render_hit
    return np.abs(depth - rendered)[both], both, int((ray_hit != render_hit).sum())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="reach_target")
    parser.add_argument("--camera", default="front")
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 32])
    parser.add_argument("--envs", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--reps", type=int, default=5, help="timed calls per configuration")
    args = parser.parse_args(argv)
    import jax
    from mujoco import mjx

    batch = MJXBatch(TASKS[args.task]())
    model, camera = batch.model, batch.model.camera(args.camera).id
    far = model.vis.map.zfar * model.stat.extent  # the renderer's far plane
    cylinders = model.geom_type == mujoco.mjtGeom.mjGEOM_CYLINDER
    datas = reset_states(batch, max(args.envs))
    device = [mjx.put_data(model, d) for d in datas]
    print(header(f"rlbench_like depth from mjx.ray: {args.task}, camera {args.camera}"))
    print(
        f"jax {jax.__version__} on {jax.devices()[0].platform}; mujoco {mujoco.__version__}; float64; "
        f"load average at start {os.getloadavg()[0]:.1f}; {args.reps} timed calls each"
    )
    print(
        "| size | N | compile s | MJX ray frames/s | CPU EGL frames/s | CPU mj_multiRay frames/s "
        f"| error median / p95 / max (m) | pixels > {OFF * 100:g} cm off (on cylinders) | hit by one only |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    notes = []
    for size in args.sizes:
        with Renderer(model, size, size) as renderer:
            rendered = np.stack([renderer.render(d, camera)[1] for d in datas])
            egl = frames_per_second(partial(renderer.render, camera=camera), datas, args.reps)
        cast = partial(c_rays, model, camera=camera, size=size)
        c_depth, c_geom = (np.stack(x) for x in zip(*(cast(d) for d in datas), strict=True))
        c_fps = frames_per_second(cast, datas, args.reps)
        c_err, _, c_one = errors(c_depth, rendered, far)
        notes.append(
            f"{size}x{size}: mj_multiRay against the renderer: error p95 {np.percentile(c_err, 95):.1e} m, max "
            f"{c_err.max():.2f} m, {int((c_err > OFF).sum())} pixels > {OFF * 100:g} cm off, {c_one} hit by one only"
        )
        depth = mjx_depth(batch, camera, size)
        for n in args.envs:
            stacked = jax.tree_util.tree_map(lambda *x: jax.numpy.stack(x), *device[:n])
            start = time.perf_counter()
            ours = np.asarray(depth(stacked).block_until_ready())
            compile_s = time.perf_counter() - start
            start = time.perf_counter()
            for _ in range(args.reps):
                depth(stacked).block_until_ready()
            fps = n * args.reps / (time.perf_counter() - start)
            err, both, one_only = errors(ours, rendered[:n], far)
            off = both & (np.abs(ours - rendered[:n]) > OFF)
            geoms = c_geom[:n][off]
            on_cylinders = int(cylinders[geoms[geoms >= 0]].sum())
            print(
                f"| {size}x{size} | {n} | {compile_s:.1f} | {fps:.0f} | {egl:.0f} | {c_fps:.0f} "
                f"| {np.median(err):.1e} / {np.percentile(err, 95):.1e} / {err.max():.2f} "
                f"| {off.sum()} of {both.sum()} ({on_cylinders}) | {one_only} |",
                flush=True,
            )
    print("\n".join(notes))


if __name__ == "__main__":
    main()
