"""A fresh chipmunk space per sequence, built and stepped through pymunk's C library directly.

pymunk's Python objects cost about 15 microseconds each to build and a few to step or read,
more than chipmunk's own work on a 32 x 32 scene. `Space` makes, in the same order, exactly the
C calls that `pymunk.Space()`, `space.static_body`, `pymunk.Body`, `pymunk.Circle`,
`pymunk.Segment`, `pymunk.PinJoint` and their setters make (less pymunk's user-data handles,
which chipmunk never reads), so the physics is bit for bit that of pymunk; tests compare the two.

Bodies, shapes and joints are chipmunk pointers owned by their `Space`, freed with it.
"""

from __future__ import annotations

import pymunk
from pymunk._chipmunk import lib

step = lib.cpSpaceStep  # step(space.ptr, dt), as pymunk.Space.step(dt) with no callbacks
position = lib.cpBodyGetPosition  # position(body) -> cpVect with .x, .y
velocity = lib.cpBodyGetVelocity
set_velocity = lib.cpBodySetVelocity  # set_velocity(body, (vx, vy))


class Space:
    """One chipmunk space (pymunk defaults, gravity, collision slop) and what is added to it.

    `ptr` is the cpSpace* for `step`; bodies are cpBody* pointers."""

    def __init__(self, gravity: tuple[float, float], collision_slop: float):
        self.ptr = lib.cpSpaceNew()
        self._bodies, self._shapes, self._joints = [], [], []
        self._static = None
        lib.cpSpaceSetGravity(self.ptr, gravity)
        lib.cpSpaceSetCollisionSlop(self.ptr, collision_slop)

    def __del__(self):
        # chipmunk frees a space without touching its shapes and joints, and activates its
        # bodies, so the space goes first, then what it held
        if getattr(self, "ptr", None) is None:
            return
        lib.cpSpaceFree(self.ptr)
        self.ptr = None
        for joint in self._joints:
            lib.cpConstraintFree(joint)
        for shape in self._shapes:
            lib.cpShapeFree(shape)
        for body in self._bodies:
            lib.cpBodyFree(body)

    @property
    def static_body(self):
        """pymunk's `space.static_body`: a static body made and added on first use."""
        if self._static is None:
            self._static = lib.cpBodyNewStatic()
            self._bodies.append(self._static)
            lib.cpSpaceAddBody(self.ptr, self._static)
        return self._static

    def add_segments(self, body, segments, elasticity: float, friction: float) -> None:
        """For each (a, b, radius): pymunk.Segment(body, a, b, radius), its elasticity and
        friction set, added (the body is already in the space)."""
        ptr, shapes = self.ptr, self._shapes
        for a, b, radius in segments:
            shape = lib.cpSegmentShapeNew(body, a, b, radius)
            shapes.append(shape)
            lib.cpShapeSetElasticity(shape, elasticity)
            lib.cpShapeSetFriction(shape, friction)
            lib.cpSpaceAddShape(ptr, shape)

    def add_ball(self, mass: float, moment: float, position, velocity, radius: float,
                 elasticity: float, friction: float):
        """pymunk.Body(mass, moment) at position with velocity and its pymunk.Circle(body,
        radius) with elasticity and friction, added together: the body's cpBody*."""
        body = lib.cpBodyNew(mass, moment)
        self._bodies.append(body)
        lib.cpBodySetPosition(body, position)
        lib.cpBodySetVelocity(body, velocity)
        shape = lib.cpCircleShapeNew(body, radius, (0.0, 0.0))
        self._shapes.append(shape)
        lib.cpShapeSetElasticity(shape, elasticity)
        lib.cpShapeSetFriction(shape, friction)
        lib.cpSpaceAddBody(self.ptr, body)
        lib.cpSpaceAddShape(self.ptr, shape)
        return body

    def add_kinematic_segment(self, position, a, b, radius: float, elasticity: float,
                              friction: float):
        """pymunk.Body(body_type=KINEMATIC) at position and its pymunk.Segment(body, a, b,
        radius) with elasticity and friction, added together: the body's cpBody*."""
        body = lib.cpBodyNewKinematic()
        self._bodies.append(body)
        lib.cpBodySetPosition(body, position)
        shape = lib.cpSegmentShapeNew(body, a, b, radius)
        self._shapes.append(shape)
        lib.cpShapeSetElasticity(shape, elasticity)
        lib.cpShapeSetFriction(shape, friction)
        lib.cpSpaceAddBody(self.ptr, body)
        lib.cpSpaceAddShape(self.ptr, shape)
        return body

    def add_pin_joint(self, a, b, anchor_a, anchor_b) -> None:
        """pymunk.PinJoint(a, b, anchor_a, anchor_b), added."""
        joint = lib.cpPinJointNew(a, b, anchor_a, anchor_b)
        self._joints.append(joint)
        lib.cpSpaceAddConstraint(self.ptr, joint)


def moment_for_circle(mass: float, radius: float) -> float:
    """Moment of inertia of a solid disc about its centre (pymunk.moment_for_circle)."""
    return pymunk.moment_for_circle(mass, 0.0, radius)


__all__ = ["Space", "moment_for_circle", "position", "set_velocity", "step", "velocity"]
