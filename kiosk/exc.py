"""The kiosk's exceptions: one base class; each subclass also inherits the fitting built-in."""


class KioskError(Exception):
    """Base class for every error the kiosk raises on purpose."""


class ConfigError(KioskError, ValueError):
    """A setting is unknown or has a value of the wrong kind."""


class BackendUnavailable(KioskError, RuntimeError):
    """A hardware backend cannot be used on this machine."""


class CameraFault(KioskError, IOError):
    """The camera stopped delivering frames."""


class StoreUnavailable(KioskError, IOError):
    """The entry log cannot be written."""


class OverrideRefused(KioskError, ValueError):
    """A guard's override does not fit its entry; `code` names why (a catalogue key's tail)."""

    def __init__(self, code: str, detail: str = ""):
        super().__init__(detail or code)
        self.code = code


class SyncRefused(KioskError, RuntimeError):
    """The central server refused a batch."""


class ReportNotSent(KioskError, IOError):
    """The daily report was not accepted by the mail server."""
