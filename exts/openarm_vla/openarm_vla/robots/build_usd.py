"""Author the project's own single-arm OpenArm USD from :mod:`openarm_spec`.

Links are rigid bodies with the published mass, centre of mass and principal inertia; collision and
visual shapes are boxes sized by each link's collision-mesh bounding box (the published meshes are not
ours). Joints are UsdPhysics joints with limits and drives; a joint whose axis is negative (``-x``,
``-y``) gets its joint frame turned 180 degrees about z on both sides, so the joint sign matches the real
robot without changing the zero pose. All joint origins have rpy = 0, so at zero joint angles every link
frame is parallel to the base and its position is the running sum of the origins.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

from pxr import Gf, Sdf, Usd, UsdGeom, UsdPhysics, UsdShade

from . import openarm_spec as spec

ROOT = "/openarm"
COLORS = {
    "openarm_link0": (0.15, 0.15, 0.17),
    "openarm_hand": (0.15, 0.15, 0.17),
    "openarm_right_finger": (0.85, 0.85, 0.88),
    "openarm_left_finger": (0.85, 0.85, 0.88),
}
ARM_COLOR = (0.92, 0.92, 0.94)
FLIP_Z = Gf.Quatf(0.0, 0.0, 0.0, 1.0)  # 180 deg about z: maps +x -> -x and +y -> -y
IDENTITY = Gf.Quatf(1.0, 0.0, 0.0, 0.0)


def link_positions() -> dict[str, tuple[float, float, float]]:
    """World position of every link frame at zero joint angles (base at the origin)."""
    pos = {"openarm_link0": (0.0, 0.0, 0.0)}
    for j in spec.JOINTS:  # ordered parent-first
        pos[j.child] = tuple(a + b for a, b in zip(pos[j.parent], j.origin))
        if j.child == "openarm_link7":
            pos["openarm_hand"] = tuple(a + b for a, b in zip(pos[j.child], spec.HAND_IN_LINK7))
    return pos


def _box(stage: Usd.Stage, path: str, center, size, color) -> Usd.Prim:
    """One box that is both the visual and the collision shape (one shape per link renders fastest)."""
    cube = UsdGeom.Cube.Define(stage, path)
    cube.CreateSizeAttr(1.0)
    xf = UsdGeom.Xformable(cube)
    xf.AddTranslateOp().Set(Gf.Vec3d(*center))
    xf.AddScaleOp().Set(Gf.Vec3f(*size))
    cube.CreateDisplayColorAttr([Gf.Vec3f(*color)])
    UsdPhysics.CollisionAPI.Apply(cube.GetPrim())
    return cube.GetPrim()


def _pad_material(stage: Usd.Stage, contact: spec.PadContact) -> UsdShade.Material:
    """The pads' physics material: sliding, torsional and rolling friction."""
    UsdGeom.Scope.Define(stage, f"{ROOT}/materials")
    mat = UsdShade.Material.Define(stage, f"{ROOT}/materials/pad")
    api = UsdPhysics.MaterialAPI.Apply(mat.GetPrim())
    api.CreateStaticFrictionAttr(contact.friction[0])
    api.CreateDynamicFrictionAttr(contact.friction[0])
    api.CreateRestitutionAttr(0.0)
    mat.GetPrim().CreateAttribute("mjc:torsionalfriction", Sdf.ValueTypeNames.Float).Set(contact.friction[1])
    mat.GetPrim().CreateAttribute("mjc:rollingfriction", Sdf.ValueTypeNames.Float).Set(contact.friction[2])
    return mat


def _author_pad_contact(prim: Usd.Prim, contact: spec.PadContact, material: UsdShade.Material) -> None:
    """MuJoCo contact attributes of a pad shape (Newton maps them onto the MuJoCo geom)."""
    prim.CreateAttribute("mjc:priority", Sdf.ValueTypeNames.Int).Set(contact.priority)
    prim.CreateAttribute("mjc:condim", Sdf.ValueTypeNames.Int).Set(contact.condim)
    prim.CreateAttribute("mjc:solref", Sdf.ValueTypeNames.Float2).Set(Gf.Vec2f(*contact.solref))
    prim.CreateAttribute("mjc:solimp", Sdf.ValueTypeNames.FloatArray).Set(list(contact.solimp))
    UsdShade.MaterialBindingAPI.Apply(prim).Bind(material, UsdShade.Tokens.weakerThanDescendants, "physics")


def _shapes(link: spec.LinkSpec) -> list[tuple[tuple, tuple]]:
    """(centre, size) boxes of a link, in the link frame."""
    if link.name.endswith("finger"):
        # A pad whose inner face is PAD_INSET inboard of the joint frame, spanning the finger length.
        side = -1.0 if "right" in link.name else 1.0
        width, thick, length = spec.PAD_SIZE
        y = -side * (spec.PAD_INSET - thick / 2.0)
        return [((0.0, y, length / 2.0), (width, thick, length))]
    if link.name == "openarm_hand":
        return [((0.0, 0.006, 0.008), link.size)]
    # Arm links: a box of the mesh bounding-box size, centred on the centre of mass (slightly shrunk so
    # neighbouring links do not overlap at the joints).
    return [(link.com, tuple(0.9 * s for s in link.size))]


def build_openarm_usd(path: str | os.PathLike, pad_contact: spec.PadContact = spec.PAD_CONTACT) -> Path:
    """Write the OpenArm USD to ``path`` atomically (temp file, then rename); return the path.

    ``pad_contact``: the MuJoCo contact parameters of the finger pads (:class:`openarm_spec.PadContact`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".usda", dir=path.parent)
    os.close(fd)
    stage = Usd.Stage.CreateNew(tmp)
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.z)
    UsdGeom.SetStageMetersPerUnit(stage, 1.0)
    UsdPhysics.SetStageKilogramsPerUnit(stage, 1.0)
    root = UsdGeom.Xform.Define(stage, ROOT)
    stage.SetDefaultPrim(root.GetPrim())
    UsdPhysics.ArticulationRootAPI.Apply(root.GetPrim())

    pad_material = _pad_material(stage, pad_contact)
    positions = link_positions()
    for link in spec.LINKS:
        lp = f"{ROOT}/{link.name}"
        xf = UsdGeom.Xform.Define(stage, lp)
        xf.AddTranslateOp().Set(Gf.Vec3d(*positions[link.name]))
        prim = xf.GetPrim()
        UsdPhysics.RigidBodyAPI.Apply(prim)
        mass = UsdPhysics.MassAPI.Apply(prim)
        mass.CreateMassAttr(link.mass)
        mass.CreateCenterOfMassAttr(Gf.Vec3f(*link.com))
        mass.CreateDiagonalInertiaAttr(Gf.Vec3f(*link.inertia))
        mass.CreatePrincipalAxesAttr(Gf.Quatf(1.0, 0.0, 0.0, 0.0))
        # The real arm compensates gravity in its firmware: MuJoCo(-Warp) reads mjc:gravcomp, PhysX the flag.
        prim.CreateAttribute("mjc:gravcomp", Sdf.ValueTypeNames.Float).Set(1.0)
        prim.CreateAttribute("physxRigidBody:disableGravity", Sdf.ValueTypeNames.Bool).Set(True)
        color = COLORS.get(link.name, ARM_COLOR)
        UsdGeom.Xform.Define(stage, f"{lp}/geometry")
        for k, (center, size) in enumerate(_shapes(link)):
            shape = _box(stage, f"{lp}/geometry/box{k}", center, size, color)
            if link.name.endswith("finger"):
                _author_pad_contact(shape, pad_contact, pad_material)

    # TCP frame: a plain transform under the hand (no body), for users and viewers.
    tcp = UsdGeom.Xform.Define(stage, f"{ROOT}/openarm_hand/openarm_hand_tcp")
    tcp.AddTranslateOp().Set(Gf.Vec3d(*spec.TCP_OFFSET))

    joints = f"{ROOT}/joints"
    UsdGeom.Scope.Define(stage, joints)
    base = UsdPhysics.FixedJoint.Define(stage, f"{joints}/fixed_base")
    base.CreateBody1Rel().SetTargets([Sdf.Path(f"{ROOT}/openarm_link0")])
    base.CreateLocalPos0Attr(Gf.Vec3f(0, 0, 0))
    base.CreateLocalPos1Attr(Gf.Vec3f(0, 0, 0))

    hand = UsdPhysics.FixedJoint.Define(stage, f"{joints}/openarm_hand_joint")
    hand.CreateBody0Rel().SetTargets([Sdf.Path(f"{ROOT}/openarm_link7")])
    hand.CreateBody1Rel().SetTargets([Sdf.Path(f"{ROOT}/openarm_hand")])
    hand.CreateLocalPos0Attr(Gf.Vec3f(*spec.HAND_IN_LINK7))
    hand.CreateLocalPos1Attr(Gf.Vec3f(0, 0, 0))

    for j in spec.JOINTS:
        jp = f"{joints}/{j.name}"
        if j.kind == "revolute":
            joint = UsdPhysics.RevoluteJoint.Define(stage, jp)
            joint.CreateLowerLimitAttr(math.degrees(j.lower))
            joint.CreateUpperLimitAttr(math.degrees(j.upper))
            drive_type, stiffness, damping = "angular", spec.ARM_STIFFNESS, spec.ARM_DAMPING
        else:
            joint = UsdPhysics.PrismaticJoint.Define(stage, jp)
            joint.CreateLowerLimitAttr(j.lower)
            joint.CreateUpperLimitAttr(j.upper)
            drive_type, stiffness, damping = "linear", spec.FINGER_STIFFNESS, spec.FINGER_DAMPING
        joint.CreateAxisAttr(j.axis[1].upper())
        rot = FLIP_Z if j.axis[0] == "-" else IDENTITY
        joint.CreateBody0Rel().SetTargets([Sdf.Path(f"{ROOT}/{j.parent}")])
        joint.CreateBody1Rel().SetTargets([Sdf.Path(f"{ROOT}/{j.child}")])
        joint.CreateLocalPos0Attr(Gf.Vec3f(*j.origin))
        joint.CreateLocalRot0Attr(rot)
        joint.CreateLocalPos1Attr(Gf.Vec3f(0, 0, 0))
        joint.CreateLocalRot1Attr(rot)
        drive = UsdPhysics.DriveAPI.Apply(joint.GetPrim(), drive_type)
        drive.CreateTypeAttr("force")
        # USD angular drive gains are per degree; Isaac Lab's actuator config overrides them anyway.
        scale = math.pi / 180.0 if drive_type == "angular" else 1.0
        drive.CreateStiffnessAttr(stiffness * scale)
        drive.CreateDampingAttr(damping * scale)
        drive.CreateMaxForceAttr(j.effort)
        drive.CreateTargetPositionAttr(0.0)

    stage.GetRootLayer().Save()
    del stage
    os.replace(tmp, path)
    return path
