"""Settings helpers shared by every service (pydantic-settings, nested with ``__``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource
from pydantic_settings import SettingsError as SourceError

S = TypeVar("S", bound=BaseSettings)

_FIELD_IN_MESSAGE = re.compile(r'field "([^"]+)"')


class SettingsError(SystemExit):
    """A bad configuration value: stops the service at start with the variable named."""


@dataclass(frozen=True)
class ScalarKey:
    """Marks a nested settings model that also takes a plain value, stored in its field ``key``.

    ``DSXCONNECT_RESULTS_DB=postgresql://…`` and ``DSXCONNECT_RESULTS_DB__RETAIN=30d`` then fill one
    model (``{"url": "postgresql://…", "retain": "30d"}``) instead of colliding: pydantic-settings
    would read the plain value as JSON and fail. A value starting with ``{`` is still JSON.
    """

    key: str


def accept_scalar_values(source: PydanticBaseSettingsSource) -> PydanticBaseSettingsSource:
    """Let an environment (or ``.env``) source give a :class:`ScalarKey` field a plain value."""
    decode = getattr(source, "decode_complex_value", None)
    if decode is None:
        return source

    def decode_scalar_aware(field_name: str, field: FieldInfo, value: Any) -> Any:
        marker = next((m for m in field.metadata if isinstance(m, ScalarKey)), None) if field else None
        if marker is not None and isinstance(value, str) and not value.lstrip().startswith("{"):
            return {marker.key: value}
        return decode(field_name, field, value)

    source.decode_complex_value = decode_scalar_aware  # type: ignore[method-assign]
    return source


def env_name(settings_cls: type[BaseSettings], loc: tuple[int | str, ...]) -> str:
    """The variable behind an error location; a :class:`ScalarKey` field is its model's plain variable."""
    prefix = settings_cls.model_config.get("env_prefix", "") or ""
    delimiter = settings_cls.model_config.get("env_nested_delimiter") or "__"
    parts = [str(part) for part in loc]
    field = settings_cls.model_fields.get(parts[0]) if parts else None
    marker = next((m for m in field.metadata if isinstance(m, ScalarKey)), None) if field else None
    if marker is not None and parts[1:] == [marker.key]:
        parts = parts[:1]
    return prefix + delimiter.join(parts).upper()


def load_settings(settings_cls: type[S], **kwargs: Any) -> S:
    """Build ``settings_cls`` from the environment, or exit naming each bad variable.

    Both kinds of failure name the variable: a value that does not validate (``ValidationError``)
    and one that a settings source cannot even parse (pydantic-settings' ``SettingsError``, e.g.
    text where JSON is expected).
    """
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
    except SourceError as exc:
        raise SettingsError("invalid configuration:\n  " + _source_error_line(settings_cls, exc)) from None


def _source_error_line(settings_cls: type[BaseSettings], exc: SourceError) -> str:
    found = _FIELD_IN_MESSAGE.search(str(exc))
    name = env_name(settings_cls, (found.group(1),)) if found else "a variable"
    cause = exc.__cause__
    reason = f"{type(cause).__name__}: {cause}" if cause is not None else str(exc)
    return f"{name} (or one of {name}__…): cannot be parsed ({reason[:200]})"
