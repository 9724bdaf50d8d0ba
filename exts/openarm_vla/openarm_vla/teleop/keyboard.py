"""Keyboard teleop for the kit-less Newton GL viewer window: key map, on-screen help, key-state tracker.

Key map (same motion keys as Isaac Lab's ``Se3Keyboard``; directions in the robot base frame, which the
viewer shows with the arm at the table's -x edge reaching along +x)::

    W / S        move the gripper +x / -x   (away from / toward the robot base)
    A / D        move +y / -y               (left / right seen from the base)
    Q / E        move +z / -z               (up / down)
    Z / X        roll  + / -                (rotate about base x)
    T / G        pitch + / -                (rotate about base y)
    C / V        yaw   + / -                (rotate about base z)
    K            toggle the gripper (open <-> closed)
    R            reset: end the episode (kept if successful, any episode with --all), start a new one
    BACKSPACE    discard: drop the episode without saving, start a new one
    ENTER        save: end the episode and save it even if not successful (success attr stays false)
    ESC          quit: close the window, save what was recorded (atomically) and exit
    (viewer)     mouse drag orbits the camera, H hides the panels, SPACE pauses rendering

Motion keys act while held (one step of ``pos_step`` / ``rot_step`` per control step); a press shorter
than a control step still moves one step, so a key tapped by ``xdotool key w`` is never lost.

The tracker is window-toolkit agnostic: feed it pyglet key symbols (``on_key_press`` /
``on_key_release``) or key names (``press("w")``); :meth:`TeleopKeyboard.advance` returns the metric
EE delta for this control step and the events (toggle_gripper, reset, discard, save, quit) since the last
call. :func:`attach_to_newton_viewer` wires it to a Newton ``ViewerGL`` (key callbacks, camera WASD off,
an ImGui help/status window).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["EVENT_KEYS", "HELP_LINES", "MOTION_KEYS", "TeleopKeyboard", "attach_to_newton_viewer", "key_name"]

# key -> (axis index in (dx, dy, dz, droll, dpitch, dyaw), sign)
MOTION_KEYS: dict[str, tuple[int, float]] = {
    "W": (0, +1.0), "S": (0, -1.0),
    "A": (1, +1.0), "D": (1, -1.0),
    "Q": (2, +1.0), "E": (2, -1.0),
    "Z": (3, +1.0), "X": (3, -1.0),
    "T": (4, +1.0), "G": (4, -1.0),
    "C": (5, +1.0), "V": (5, -1.0),
}
EVENT_KEYS: dict[str, str] = {
    "K": "toggle_gripper",
    "R": "reset",
    "BACKSPACE": "discard",
    "ENTER": "save",
    "RETURN": "save",
    "NUM_ENTER": "save",
    "ESCAPE": "quit",
}

HELP_LINES: tuple[str, ...] = (
    "W/S   move +x/-x (forward/back)",
    "A/D   move +y/-y (left/right)",
    "Q/E   move up/down",
    "Z/X   roll +/-",
    "T/G   pitch +/-",
    "C/V   yaw +/-",
    "K     toggle gripper",
    "R     reset (save if success / --all)",
    "Bksp  discard episode",
    "Enter save episode now",
    "Esc   save file and quit",
    "mouse: orbit camera, H: hide panels",
)


def key_name(symbol: int | str) -> str:
    """Upper-case key name of a pyglet key symbol (or a name): 'W', 'ENTER', 'ESCAPE', ..."""
    if isinstance(symbol, str):
        name = symbol.upper()
    else:
        from pyglet.window import key as pkey

        name = pkey.symbol_string(symbol).upper().lstrip("_")
    return {"RETURN": "ENTER", "ESC": "ESCAPE"}.get(name, name)


@dataclass
class TeleopKeyboard:
    """Key state -> per-step EE delta and events."""

    pos_step: float = 0.004
    """Translation per control step while a move key is held [m] (0.2 m/s at 50 Hz)."""
    rot_step: float = 0.03
    """Rotation per control step while a rotate key is held [rad] (1.5 rad/s at 50 Hz)."""

    def __post_init__(self):
        self._held: set[str] = set()
        self._tapped: set[str] = set()
        self._events: list[str] = []

    # -- input -------------------------------------------------------------------------------------
    def press(self, key: int | str) -> None:
        name = key_name(key)
        if name in MOTION_KEYS:
            self._held.add(name)
            self._tapped.add(name)
        elif name in EVENT_KEYS:
            self._events.append(EVENT_KEYS[name])

    def release(self, key: int | str) -> None:
        self._held.discard(key_name(key))

    def on_key_press(self, symbol: int, modifiers: int = 0) -> None:
        self.press(symbol)

    def on_key_release(self, symbol: int, modifiers: int = 0) -> None:
        self.release(symbol)

    def request(self, event: str) -> None:
        """Queue an event from elsewhere (e.g. the window was closed: 'quit')."""
        self._events.append(event)

    # -- output ------------------------------------------------------------------------------------
    def command(self) -> np.ndarray:
        """Unit command per axis in {-1, 0, 1} [6] from the held and tapped keys (not consumed)."""
        cmd = np.zeros(6, dtype=np.float32)
        for name in self._held | self._tapped:
            axis, sign = MOTION_KEYS[name]
            cmd[axis] += sign
        return np.clip(cmd, -1.0, 1.0)

    def advance(self) -> tuple[np.ndarray, list[str]]:
        """The metric EE delta (dx, dy, dz, droll, dpitch, dyaw) for this step and the queued events."""
        cmd = self.command()
        delta = cmd * np.array([self.pos_step] * 3 + [self.rot_step] * 3, dtype=np.float32)
        self._tapped.clear()
        events, self._events = self._events, []
        return delta, events

    def clear(self) -> None:
        self._held.clear()
        self._tapped.clear()


def attach_to_newton_viewer(viewer, keyboard: TeleopKeyboard, status: Callable[[], list[str]] | None = None,
                            title: str = "Teleop (keyboard)") -> None:
    """Wire ``keyboard`` to a Newton ``ViewerGL`` window and draw the key help (+ status lines) in it.

    The viewer's own WASD/QE/arrow camera flight is turned off (the keys drive the arm); the mouse still
    orbits and zooms. ESC still closes the window (the recorder treats that as quit).
    """
    viewer.renderer.register_key_press(keyboard.on_key_press)
    viewer.renderer.register_key_release(keyboard.on_key_release)
    viewer._update_camera = lambda dt: None  # keys drive the robot, not the camera

    def draw(imgui):
        io = imgui.get_io()  # bottom-right corner (Newton's stats panel sits top-right)
        imgui.set_next_window_pos(imgui.ImVec2(io.display_size[0] - 10.0, io.display_size[1] - 10.0),
                                  imgui.Cond_.always, imgui.ImVec2(1.0, 1.0))
        imgui.set_next_window_bg_alpha(0.85)
        flags = imgui.WindowFlags_.no_collapse | imgui.WindowFlags_.always_auto_resize
        if imgui.begin(title, None, flags)[0]:
            for line in status() if status is not None else []:
                imgui.text(line)
            imgui.separator()
            for line in HELP_LINES:
                imgui.text(line)
        imgui.end()

    viewer.register_ui_callback(draw, position="free")
