"""Incremental rescans: the unchanged-object index and the scanner identity it is keyed on.

A full scan's item whose connector-listed version (``shared.item_version``) and the scanner's
identity match what was scanned last time is not read nor scanned again: its stored verdict is
recorded as a result with ``scanner.cached: true`` (docs/scan-cache.md).
"""
