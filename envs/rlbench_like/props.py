"""Builders for task props in an MjSpec: free or fixed bodies of boxes, cylinders and convex meshes.

Every prop is primitives or convex meshes (MJX can collide both); a prop that must look concave (a
drawer, a ring, a cupboard) is several convex geoms on one body.
"""

from __future__ import annotations

from collections.abc import Sequence

import mujoco
import numpy as np

BOX = mujoco.mjtGeom.mjGEOM_BOX
CYLINDER = mujoco.mjtGeom.mjGEOM_CYLINDER
CAPSULE = mujoco.mjtGeom.mjGEOM_CAPSULE
SPHERE = mujoco.mjtGeom.mjGEOM_SPHERE
MESH = mujoco.mjtGeom.mjGEOM_MESH

GREY = (0.55, 0.55, 0.58, 1.0)
DARK = (0.25, 0.25, 0.28, 1.0)
WHITE = (0.9, 0.9, 0.9, 1.0)
# Friction of graspable objects: high enough that a 25 N pinch holds them through fast moves.
OBJECT_FRICTION = (1.0, 0.01, 0.001)


def body(
    parent: mujoco.MjsBody, name: str, pos: Sequence[float] = (0, 0, 0), free: bool = False, quat=None
) -> mujoco.MjsBody:
    """A child body; with `free`, a free joint named `<name>_joint` (a movable object)."""
    b = parent.add_body(name=name, pos=list(pos))
    if quat is not None:
        b.quat = list(quat)
    if free:
        b.add_freejoint(name=f"{name}_joint")
    return b


def geom(
    b: mujoco.MjsBody,
    kind: mujoco.mjtGeom,
    size: Sequence[float],
    rgba: Sequence[float] = GREY,
    pos: Sequence[float] = (0, 0, 0),
    name: str = "",
    mass: float | None = None,
    collide: bool = True,
    quat: Sequence[float] | None = None,
    meshname: str = "",
) -> mujoco.MjsGeom:
    """A geom; `collide=False` makes a visual-only decal or marker (no contacts, no mass)."""
    g = b.add_geom(type=kind, size=list(size) + [0.0] * (3 - len(size)), rgba=list(rgba), pos=list(pos))
    if name:
        g.name = name
    if quat is not None:
        g.quat = list(quat)
    if meshname:
        g.meshname = meshname
    g.friction = list(OBJECT_FRICTION)
    if not collide:
        g.contype = 0
        g.conaffinity = 0
        g.density = 0.0
        g.group = 2
    elif mass is not None:
        g.mass = mass
    return g


def prism_mesh(spec: mujoco.MjSpec, name: str, radius: float, half_height: float, sides: int, phase: float = 0.0):
    """A convex regular prism (e.g. a hexagonal peg) as a mesh centred on its body's origin."""
    angles = phase + 2 * np.pi * np.arange(sides) / sides
    ring = np.stack([radius * np.cos(angles), radius * np.sin(angles)], axis=1)
    verts = [[x, y, z] for z in (-half_height, half_height) for x, y in ring]
    spec.add_mesh(name=name, uservert=np.asarray(verts).ravel().tolist())


def frame_of_boxes(
    b: mujoco.MjsBody,
    outer: tuple[float, float],
    inner: tuple[float, float],
    half_height: float,
    rgba,
    z: float = 0.0,
    mass: float | None = None,
) -> None:
    """A rectangular ring (outer and inner half-extents in x, y) of four boxes: a hole made of convex parts."""
    (ox, oy), (ix, iy) = outer, inner
    wall_x, wall_y = (ox - ix) / 2, (oy - iy) / 2
    part_mass = None if mass is None else mass / 4
    for sign in (-1, 1):
        geom(b, BOX, (ox, wall_y, half_height), rgba, pos=(0, sign * (iy + wall_y), z), mass=part_mass)
        geom(b, BOX, (wall_x, iy, half_height), rgba, pos=(sign * (ix + wall_x), 0, z), mass=part_mass)
