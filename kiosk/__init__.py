"""The checkpoint kiosk: QR health declarations, BLE app presence and a door, at a gate.

Importing this package has no side effects and needs no camera, Bluetooth adapter or GPIO:
hardware libraries are imported inside the backend that uses them (see kiosk.checkpoint).
"""

__version__ = "0.1.0"
