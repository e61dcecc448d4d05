"""Settings helpers shared by every service (pydantic-settings, nested with ``__``)."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings

S = TypeVar("S", bound=BaseSettings)


class SettingsError(SystemExit):
    """A bad configuration value: stops the service at start with the variable named."""


def env_name(settings_cls: type[BaseSettings], loc: tuple[int | str, ...]) -> str:
    prefix = settings_cls.model_config.get("env_prefix", "") or ""
    delimiter = settings_cls.model_config.get("env_nested_delimiter") or "__"
    return prefix + delimiter.join(str(part) for part in loc).upper()


def load_settings(settings_cls: type[S], **kwargs: Any) -> S:
    """Build ``settings_cls`` from the environment, or exit naming each bad variable."""
    try:
        return settings_cls(**kwargs)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = env_name(settings_cls, tuple(err["loc"]))
            value = err.get("input")
            shown = "" if isinstance(value, dict) or value is None else f" (got {str(value)[:80]!r})"
            lines.append(f"  {name}: {err['msg']}{shown}")
        raise SettingsError("invalid configuration:\n" + "\n".join(lines)) from None
