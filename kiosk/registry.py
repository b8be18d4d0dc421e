"""Backends chosen by name in settings, imported only when chosen (as gpiozero does for its
pin factories), so a hardware library is loaded only on the machine that uses it."""
from __future__ import annotations

import importlib
from typing import Any

from .exc import ConfigError


def backend_class(registry: dict[str, str], setting: str, name: str) -> type[Any]:
    """The class registered as `name` ("module:Class"), imported now (so its type is known only then)."""
    try:
        module_name, cls_name = registry[name].split(":")
    except KeyError:
        raise ConfigError(f"{setting}: unknown backend {name!r} "
                          f"(one of {', '.join(sorted(registry))})") from None
    return getattr(importlib.import_module(module_name), cls_name)
