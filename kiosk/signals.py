"""The door and the lights: a relay pulse, green/red LEDs and a buzzer through gpiozero.

The pin factory is chosen by name (`gpio.pin_factory`) through gpiozero's own registry of
factories (the `gpiozero_pin_factories` entry points), so "mock" gives gpiozero's
MockFactory, whose pins record every state change with its time.
"""
from __future__ import annotations

import logging
from importlib.metadata import entry_points

from .exc import ConfigError
from .model import ALLOW, DENY, Decision

logger = logging.getLogger(__name__)
# One line per relay pulse, naming what opened it: with mock pins in another process, this
# line is how bench/soak.py reads the door's history against the entry log.
DOOR_LINE = "door relay pulse %.1f s for %s"


def pin_factory(name: str):
    """gpiozero pin factory named `name`, or None for gpiozero's own default."""
    if not name:
        return None
    for ep in entry_points(group="gpiozero_pin_factories"):
        if ep.name == name.lower():
            return ep.load()()
    raise ConfigError(f"gpio.pin_factory: gpiozero has no pin factory {name!r}")


class DoorSignals:
    """Show a decision: allow pulses the relay and the green LED; deny lights red and beeps
    twice; review blinks both LEDs and beeps once so the guard looks up."""

    def __init__(self, factory, relay_pin: int, green_pin: int, red_pin: int, buzzer_pin: int,
                 open_seconds: float = 3.0, relay_active_high: bool = True,
                 exit_button_pin: int = 0, door_contact_pin: int = 0):
        from gpiozero import LED, Button, Buzzer, DigitalOutputDevice

        self.factory = factory
        self.open_seconds = open_seconds
        self.relay = DigitalOutputDevice(relay_pin, active_high=relay_active_high, initial_value=False,
                                         pin_factory=factory)
        self.green = LED(green_pin, pin_factory=factory)
        self.red = LED(red_pin, pin_factory=factory)
        self.buzzer = Buzzer(buzzer_pin, pin_factory=factory)
        # Both switch to ground, with the Pi's internal pull-up; 50 ms debounce for contacts.
        self.exit_button = Button(exit_button_pin, bounce_time=0.05, pin_factory=factory) if exit_button_pin else None
        self.door_contact = (Button(door_contact_pin, bounce_time=0.05, pin_factory=factory)
                             if door_contact_pin else None)
        self.exits = 0
        if self.exit_button is not None:
            self.exit_button.when_pressed = self._exit_pressed

    @classmethod
    def from_settings(cls, settings) -> DoorSignals:
        return cls(pin_factory(settings["gpio.pin_factory"]), settings["door.relay_pin"],
                   settings["signals.green_pin"], settings["signals.red_pin"],
                   settings["signals.buzzer_pin"], settings["door.open_seconds"],
                   settings["door.relay_active_high"], settings["signals.exit_button_pin"],
                   settings["signals.door_contact_pin"])

    def show(self, decision: Decision, why: str = "a decision") -> None:
        """Start the signals for `decision`; returns at once (gpiozero runs them in threads).

        :param why: What the door opens for, in the door's log line (an entry id).
        """
        self.green.off()
        self.red.off()
        if decision.outcome == ALLOW:
            self.open_door(why)
        elif decision.outcome == DENY:
            self.red.blink(on_time=2.0, off_time=0, n=1)
            self.buzzer.beep(on_time=0.15, off_time=0.1, n=2)
        else:
            self.green.blink(on_time=0.25, off_time=0.25, n=4)
            self.red.blink(on_time=0.25, off_time=0.25, n=4)
            self.buzzer.beep(on_time=0.1, off_time=0, n=1)

    def _exit_pressed(self) -> None:
        # Someone leaving from inside: no code to check, the door just opens.
        self.exits += 1
        self.open_door("the exit button")

    @property
    def door(self) -> str:
        """"closed", "open" or "unknown" (no contact wired)."""
        if self.door_contact is None:
            return "unknown"
        return "closed" if self.door_contact.is_pressed else "open"

    def open_door(self, why: str = "a guard") -> None:
        """Pulse the door relay for `open_seconds`; log one DOOR_LINE naming `why`."""
        self.relay.blink(on_time=self.open_seconds, off_time=0, n=1)
        logger.info(DOOR_LINE, self.open_seconds, why)
        self.green.blink(on_time=self.open_seconds, off_time=0, n=1)

    def close(self) -> None:
        for device in (self.relay, self.green, self.red, self.buzzer, self.exit_button, self.door_contact):
            if device is not None:
                device.close()
