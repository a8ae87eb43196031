"""Name-based access to one task's MjModel and MjData, so task code reads like the scene it builds."""

from __future__ import annotations

import mujoco
import numpy as np

from polyact.envs.rlbench_like.rotations import mat_to_quat

# Where hidden objects wait: under the table, out of every camera's view and of the robot's reach.
_PARKING = np.array([0.4, 0.0, -0.5])


class Sim:
    def __init__(self, model: mujoco.MjModel, data: mujoco.MjData):
        self.model, self.data = model, data
        self._contype = model.geom_contype.copy()
        self._conaffinity = model.geom_conaffinity.copy()
        self._rgba = model.geom_rgba.copy()
        self._gravcomp = model.body_gravcomp.copy()

    # --- reading -----------------------------------------------------------------------------
    def pos(self, body: str) -> np.ndarray:
        return self.data.xpos[self.model.body(body).id].copy()

    def quat(self, body: str) -> np.ndarray:
        return mat_to_quat(self.data.xmat[self.model.body(body).id])

    def yaw(self, body: str) -> float:
        mat = self.data.xmat[self.model.body(body).id].reshape(3, 3)
        return float(np.arctan2(mat[1, 0], mat[0, 0]))

    def site(self, name: str) -> np.ndarray:
        return self.data.site_xpos[self.model.site(name).id].copy()

    def joint(self, name: str) -> float:
        return float(self.data.qpos[self.model.joint(name).qposadr[0]])

    def geoms_of(self, body: str) -> list[int]:
        bid = self.model.body(body).id
        return [g for g in range(self.model.ngeom) if self.model.geom_bodyid[g] == bid]

    def touching(self, body_a: str, body_b: str) -> bool:
        a, b = self.model.body(body_a).id, self.model.body(body_b).id
        con = self.data.contact
        b1, b2 = self.model.geom_bodyid[con.geom1], self.model.geom_bodyid[con.geom2]
        return bool(np.any(((b1 == a) & (b2 == b)) | ((b1 == b) & (b2 == a))))

    def held(self, body: str) -> bool:
        """A finger touches the body: RLBench's `NothingGrasped` negated, for our friction grasps."""
        return self.touching(body, "left_finger") or self.touching(body, "right_finger")

    # --- writing (at reset) ----------------------------------------------------------------------
    def set_joint(self, name: str, value: float) -> None:
        self.data.qpos[self.model.joint(name).qposadr[0]] = value

    def place(self, body: str, pos, yaw: float = 0.0) -> None:
        """Put a free body (free joint `<body>_joint`) at rest at `pos`, turned by `yaw` about z."""
        adr = self.model.joint(f"{body}_joint").qposadr[0]
        self.data.qpos[adr : adr + 3] = pos
        self.data.qpos[adr + 3 : adr + 7] = [np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)]
        vadr = self.model.joint(f"{body}_joint").dofadr[0]
        self.data.qvel[vadr : vadr + 6] = 0.0

    def move_fixed(self, body: str, pos, yaw: float = 0.0) -> None:
        """Move a body welded to the world (furniture) by editing the model; a mocap body (the MJX backend's
        copy of the scene) is posed by the data as well."""
        bid = self.model.body(body).id
        self.model.body_pos[bid] = pos
        self.model.body_quat[bid] = [np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)]
        mocap = self.model.body_mocapid[bid]
        if mocap >= 0:
            self.data.mocap_pos[mocap] = self.model.body_pos[bid]
            self.data.mocap_quat[mocap] = self.model.body_quat[bid]

    def paint(self, body: str, rgba, geoms: list[int] | None = None) -> None:
        for g in self.geoms_of(body) if geoms is None else geoms:
            self.model.geom_rgba[g] = rgba

    def restore_appearance(self) -> None:
        """Undo every paint, hide and show of the previous episode."""
        self.model.geom_rgba[:] = self._rgba
        self.model.geom_contype[:] = self._contype
        self.model.geom_conaffinity[:] = self._conaffinity
        self.model.body_gravcomp[:] = self._gravcomp

    def hide(self, body: str) -> None:
        """Take a free body out of the episode: invisible, without contacts, floating under the table."""
        self.model.body_gravcomp[self.model.body(body).id] = 1.0
        for g in self.geoms_of(body):
            self.model.geom_rgba[g, 3] = 0.0
            self.model.geom_contype[g] = 0
            self.model.geom_conaffinity[g] = 0
        self.place(body, _PARKING)

    def active(self, body: str) -> bool:
        return any(self.model.geom_rgba[g, 3] > 0 for g in self.geoms_of(body))
