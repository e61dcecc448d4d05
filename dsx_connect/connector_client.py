"""What the core makes of a connector's answer: one error map for every call the core makes.

:func:`classify` is the only place that turns a connector's HTTP status (and, where the contract
gives one, its ``error`` field) into a kind of outcome. The scan step (``read_file``,
``read_files``), the action step (``item_action``) and the API's calls use it, so a status means
the same everywhere:

=====================================  ==============  ===============================================
status                                 kind            what the core does
=====================================  ==============  ===============================================
2xx                                    ``ok``          reads the answer
404                                    ``gone``        the item is not at its location (typed outcome)
412 with ``error: item_changed``       ``changed``     the item is not the version scanned: untouched
401, 408, 429, 5xx, 1xx/3xx, none      ``unavailable`` retried with backoff (401: a key being rotated)
any other 4xx                          ``refused``     permanent: not retried
=====================================  ==============  ===============================================

Decisions never depend on message text (shared/item_version.py).
"""

from __future__ import annotations

import json
from enum import Enum

from shared.item_version import ERROR_ITEM_CHANGED, ITEM_CHANGED_STATUS


class AnswerKind(Enum):
    OK = "ok"
    GONE = "gone"
    CHANGED = "changed"
    UNAVAILABLE = "unavailable"
    REFUSED = "refused"


RETRIED_STATUSES = frozenset({401, 408, 429})


def error_field(body: bytes | str | dict[str, object] | None) -> str:
    """The ``error`` field of a JSON answer (``""`` when there is none)."""
    if isinstance(body, dict):
        data: object = body
    else:
        try:
            data = json.loads(body or b"")
        except (ValueError, TypeError):
            return ""
    if isinstance(data, dict):
        value = data.get("error")
        if isinstance(value, str):
            return value
        detail = data.get("detail")  # FastAPI's HTTPException(detail={...})
        if isinstance(detail, dict) and isinstance(detail.get("error"), str):
            return str(detail["error"])
    return ""


def classify(status: int, body: bytes | str | dict[str, object] | None = None) -> AnswerKind:
    """The kind of a connector's answer (see the module's table)."""
    if 200 <= status < 300:
        return AnswerKind.OK
    if status == 404:
        return AnswerKind.GONE
    if status == ITEM_CHANGED_STATUS and error_field(body) == ERROR_ITEM_CHANGED:
        return AnswerKind.CHANGED
    if status >= 500 or status in RETRIED_STATUSES or status < 400:
        return AnswerKind.UNAVAILABLE
    return AnswerKind.REFUSED
