"""Which environment variables a pydantic-settings class reads, to report the ones it would ignore.

With ``extra="ignore"`` a misspelt or retired variable (``DSXCONNECT_SCANER__TIMEOUT_S``, a 1.x name
with no meaning here) is silently dropped; :func:`unknown_variables` names them so the service can warn
at start. A name is known when it is a field's variable (prefix, field names joined by the nested
delimiter, through nested models), one of a field's validation aliases, or listed in ``extra_known``
(the legacy names a model validator translates).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import AliasChoices, BaseModel
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model a field holds (``Model``, ``Model | None``), else None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        models = [m for m in map(_model_of, typing.get_args(annotation)) if m is not None]
        return models[0] if len(models) == 1 else None
    return None


def _takes_mapping(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_takes_mapping(arg) for arg in typing.get_args(annotation))
    return annotation is dict or origin is dict or annotation is Any


def _names(name: str, field: FieldInfo, top: bool = False) -> set[str]:
    """The names a field is read under; a top-level field with a validation alias is read only by it."""
    names = set() if top and field.validation_alias else {name}
    if field.alias:
        names.add(field.alias)
    alias = field.validation_alias
    if isinstance(alias, str):
        names.add(alias)
    elif isinstance(alias, AliasChoices):
        names.update(choice for choice in alias.choices if isinstance(choice, str))
    return {n.lower() for n in names}


def _known(
    model: type[BaseModel],
    parts: list[str],
    extra: Mapping[type[BaseModel], Iterable[str]],
    top: bool = False,
) -> bool:
    head, rest = parts[0], parts[1:]
    if not rest and head in {n.lower() for n in extra.get(model, ())}:
        return True
    for name, field in model.model_fields.items():
        if head not in _names(name, field, top):
            continue
        if not rest:
            return True
        sub = _model_of(field.annotation)
        if sub is not None:
            return _known(sub, rest, extra)
        return _takes_mapping(field.annotation)
    return False


def unknown_variables(
    settings_cls: type[BaseSettings],
    environ: Mapping[str, str],
    extra_known: Mapping[type[BaseModel], Iterable[str]] | None = None,
    ignore: Iterable[str] = (),
) -> list[str]:
    """The variables of ``environ`` carrying the class's prefix that no setting reads, sorted."""
    prefix = str(settings_cls.model_config.get("env_prefix") or "")
    delimiter = settings_cls.model_config.get("env_nested_delimiter") or "__"
    top_aliases: set[str] = set()
    for name, field in settings_cls.model_fields.items():
        top_aliases |= {n.upper() for n in _names(name, field, top=True)}
    skipped = {name.upper() for name in ignore}
    unknown = []
    for var in environ:
        upper = var.upper()
        if not prefix or not upper.startswith(prefix.upper()) or upper in top_aliases or upper in skipped:
            continue
        parts = upper[len(prefix) :].lower().split(delimiter.lower())
        if not all(parts) or not _known(settings_cls, parts, extra_known or {}, top=True):
            unknown.append(var)
    return sorted(unknown)
