"""Settings helpers shared by every service (pydantic-settings, nested with ``__``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import UnionType
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, SecretBytes, SecretStr, ValidationError
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


# names of values never echoed in an error (SPEC §8: logs never show a secret)
_SECRET_NAME = re.compile(r"secret|token|passw|key|credential|salt", re.IGNORECASE)
_URL_CREDENTIALS = re.compile(r"://[^/@\s]*@")


def may_hold_secret(model: type[BaseModel], loc: tuple[int | str, ...]) -> bool:
    """Whether the value at ``loc`` of ``model`` is, or may contain, a secret: a name that says so on
    the way, a ``SecretStr``/``SecretBytes`` there, or a model or list whose fields hold one (the JSON
    text of ``NOTIFICATIONS__WEBHOOKS`` carries each webhook's secret). Where ``loc`` cannot be
    followed, what was reached last decides, so an unknown place errs on the side of hiding."""
    annotation: Any = model
    for part in loc:
        if isinstance(part, str) and _SECRET_NAME.search(part):
            return True
        step = _field_type(annotation, part)
        if step is None:
            break
        annotation = step
    return _holds_secret(annotation, set())


def _variants(annotation: Any) -> list[Any]:
    """``annotation`` without ``Annotated``/``Optional``/unions: the types it may be."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _variants(get_args(annotation)[0])
    if origin in (Union, UnionType):
        return [v for arg in get_args(annotation) for v in _variants(arg)]
    return [annotation]


def _field_type(annotation: Any, part: int | str) -> Any | None:
    """The type one step (a field name, a list index, a dict key) inside ``annotation``, if known."""
    for variant in _variants(annotation):
        origin = get_origin(variant)
        if isinstance(variant, type) and issubclass(variant, BaseModel) and isinstance(part, str):
            field = variant.model_fields.get(part)
            if field is not None:
                return field.annotation
        elif origin in (list, tuple, set, frozenset) and isinstance(part, int):
            args = [a for a in get_args(variant) if a is not Ellipsis]
            return args[0] if len(args) == 1 else Union[tuple(args)] if args else None  # noqa: UP007
        elif origin is dict and get_args(variant):
            return get_args(variant)[1]
    return None


def _holds_secret(annotation: Any, seen: set[type]) -> bool:
    for variant in _variants(annotation):
        if isinstance(variant, type):
            if issubclass(variant, SecretStr | SecretBytes):
                return True
            if issubclass(variant, BaseModel):
                if variant in seen:
                    continue
                seen.add(variant)
                for name, field in variant.model_fields.items():
                    if _SECRET_NAME.search(name) or _holds_secret(field.annotation, seen):
                        return True
                continue
        if any(_holds_secret(arg, seen) for arg in get_args(variant) if arg is not Ellipsis):
            return True
    return False


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
            hidden = (
                isinstance(value, dict)
                or value is None
                or _URL_CREDENTIALS.search(str(value)) is not None  # redis://:password@host
                or may_hold_secret(settings_cls, tuple(err["loc"]))
            )
            shown = "" if hidden else f" (got {str(value)[:80]!r})"
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
