"""Offscreen MuJoCo rendering of RGB and metric depth in one pass, fast on a CPU-only machine.

On Mesa's software rasteriser (EGL + llvmpipe) a 128x128 Meta-World frame with MuJoCo's default
visual settings (4096 shadow map, 4x multisampling, reflections) costs about 10x the same frame with
those three off; depth comes from the same pass's depth buffer for almost nothing. `quality="fast"`
turns them off (the default for datasets); `quality="full"` keeps the model's own settings.

GL contexts are freed explicitly by `close()` or, at the latest, by a finalizer that runs at
interpreter exit before module teardown, so the EGL bindings never print errors from the garbage
collector.
"""

from __future__ import annotations

import weakref

import mujoco  # polyact/__init__.py has set MUJOCO_GL=egl unless the user chose a backend
import numpy as np

from polyact.envs.catalog import QUALITIES, Quality
from polyact.errors import ConfigError, unknown_name


def _free(gl_context: object, mjr_context: mujoco.MjrContext) -> None:
    # The MjrContext's textures and framebuffers are names in its own GL context: freed while another
    # renderer's context is current, they would delete that renderer's objects of the same names.
    gl_context.make_current()
    mjr_context.free()
    gl_context.free()


class Renderer:
    """Renders named cameras of one MjModel to (rgb uint8 HxWx3, depth float32 HxW metres)."""

    def __init__(self, model: mujoco.MjModel, height: int, width: int, quality: Quality = "fast"):
        if quality not in QUALITIES:
            raise unknown_name("render quality", quality, QUALITIES)
        if height < 1 or width < 1:
            raise ConfigError(f"render resolution must be positive, got {height}x{width}")
        self.model, self.height, self.width, self.quality = model, height, width, quality
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, width)
        model.vis.global_.offheight = max(model.vis.global_.offheight, height)
        if quality == "fast":
            model.vis.quality.shadowsize = 0
            model.vis.quality.offsamples = 0
        try:
            self._gl = mujoco.GLContext(model.vis.global_.offwidth, model.vis.global_.offheight)
            self._gl.make_current()
            self._ctx = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_150)
        except Exception as err:  # mujoco raises FatalError, the GL bindings their own errors
            backend = getattr(mujoco.GLContext, "__module__", "none")
            raise RuntimeError(
                f"offscreen rendering failed with MuJoCo's GL backend {backend!r} ({err}). MuJoCo chooses its "
                "backend when first imported: set MUJOCO_GL=egl in the environment (or import polyact before "
                "mujoco), and install EGL with Mesa (Debian: libegl1 libgl1-mesa-dri)"
            ) from err
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, self._ctx)
        self._ctx.readDepthMap = mujoco.mjtDepthMap.mjDEPTH_ZEROFAR
        self._finalizer = weakref.finalize(self, _free, self._gl, self._ctx)
        self._scene = mujoco.MjvScene(model, maxgeom=10_000)
        if quality == "fast":
            self._scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
            self._scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
        self._option = mujoco.MjvOption()
        self._camera = mujoco.MjvCamera()
        self._camera.type = mujoco.mjtCamera.mjCAMERA_FIXED
        self._rect = mujoco.MjrRect(0, 0, width, height)
        self._rgb = np.empty((height, width, 3), np.uint8)
        self._zbuffer = np.empty((height, width), np.float32)
        extent = model.stat.extent
        self._near = float(model.vis.map.znear * extent)
        self._far = float(model.vis.map.zfar * extent)

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    def camera_id(self, camera: str) -> int:
        cam_id = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_CAMERA, camera)
        if cam_id < 0:
            names = [self.model.camera(i).name for i in range(self.model.ncam)]
            raise unknown_name("camera", camera, names)
        return cam_id

    def render(self, data: mujoco.MjData, camera: str | int) -> tuple[np.ndarray, np.ndarray]:
        """RGB (row 0 at the top) and z-depth in metres from one render pass; new arrays each call."""
        if self.closed:
            raise RuntimeError("render() called after close()")
        self._camera.fixedcamid = self.camera_id(camera) if isinstance(camera, str) else camera
        self._gl.make_current()
        mujoco.mjv_updateScene(
            self.model, data, self._option, None, self._camera, mujoco.mjtCatBit.mjCAT_ALL, self._scene
        )
        mujoco.mjr_render(self._rect, self._scene, self._ctx)
        mujoco.mjr_readPixels(self._rgb, self._zbuffer, self._rect, self._ctx)
        rgb = np.flipud(self._rgb).copy()
        return rgb, self._metric_depth(np.flipud(self._zbuffer))

    def _metric_depth(self, zbuffer: np.ndarray) -> np.ndarray:
        # With mjDEPTH_ZEROFAR, readPixels gives reversed Z in [0, 1]: 1 at the near plane, 0 at the far one,
        # linear in 1/depth, so z-depth = near * far / (near + z * (far - near)). Reversed Z keeps the
        # float buffer's precision at a distance; float64 keeps it in the conversion.
        near, far = self._near, self._far
        z = zbuffer.astype(np.float64)
        return (near * far / (near + z * (far - near))).astype(np.float32)

    def close(self) -> None:
        self._finalizer()

    def __enter__(self) -> Renderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
