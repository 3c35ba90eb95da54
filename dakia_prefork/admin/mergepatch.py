"""JSON Merge Patch (RFC 7396): how ``PATCH /config`` changes a config.

A patch is a JSON document shaped like the target: an object member replaces the target's
member of the same name, recursively for objects; ``null`` removes the member; anything
that is not an object (a list, a string, a number) replaces the target whole. Lists are
therefore replaced, never merged: to change one router, send the whole ``routers`` list.
"""
from __future__ import annotations

import copy
from typing import Any


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """The result of applying ``patch`` to ``target``; neither is changed."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result: dict[str, Any] = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = apply_merge_patch(result.get(key), value)
    return result
