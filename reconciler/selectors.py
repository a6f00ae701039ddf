"""Kubernetes label selectors, evaluated deterministically (pure)."""

from __future__ import annotations

from collections.abc import Mapping

from events import schema

OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


def problem(sel: schema.LabelSelector) -> str | None:
    """Why a selector is invalid, or None."""
    for r in sel.match_expressions:
        if r.operator not in OPERATORS:
            return f"invalid operator {r.operator!r} for key {r.key!r}"
        if r.operator in ("In", "NotIn") and not r.values:
            return f"operator {r.operator} needs values for key {r.key!r}"
        if r.operator in ("Exists", "DoesNotExist") and r.values:
            return f"operator {r.operator} takes no values for key {r.key!r}"
        if not r.key:
            return "empty key in matchExpressions"
    return None


def matches(sel: schema.LabelSelector, labels: Mapping[str, str]) -> bool:
    """True when ``labels`` satisfy ``sel`` (an empty selector matches everything)."""
    for k, v in sel.match_labels:
        if labels.get(k) != v:
            return False
    for r in sel.match_expressions:
        present = r.key in labels
        if r.operator == "In":
            if not present or labels[r.key] not in r.values:
                return False
        elif r.operator == "NotIn":
            if present and labels[r.key] in r.values:
                return False
        elif r.operator == "Exists":
            if not present:
                return False
        elif r.operator == "DoesNotExist":
            if present:
                return False
        else:
            return False
    return True


def any_matches(sels: tuple[schema.LabelSelector, ...], labels: Mapping[str, str]) -> bool:
    """OR across selectors; an empty tuple matches everything."""
    return not sels or any(matches(s, labels) for s in sels)
