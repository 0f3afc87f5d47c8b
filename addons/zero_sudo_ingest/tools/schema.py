"""A strict subset of JSON Schema for stream messages, with no dependency.

Supported keywords: ``type`` (a name or a list of names among object, array, string,
integer, number, boolean, null), ``properties``, ``required``, ``additionalProperties``
(a boolean), ``items``, ``enum``, ``minLength``, ``maxLength``, ``minimum``, ``maximum``,
``maxItems``, plus the annotations ``title``, ``description`` and ``$schema``. Any other
keyword is refused when the schema is saved (:func:`check_schema`), rather than silently
ignored: a stream never accepts data its owner believed was being checked.
"""

from __future__ import annotations

from typing import Any

TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}
KEYWORDS = frozenset(
    {
        "type",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "enum",
        "minLength",
        "maxLength",
        "minimum",
        "maximum",
        "maxItems",
        "title",
        "description",
        "$schema",
    }
)
MAX_ERRORS = 20  # per message: enough to fix it, bounded for a hostile payload


class SchemaError(ValueError):
    """The schema itself uses something this validator does not check."""


def check_schema(schema: Any, path: str = "$") -> None:
    """Raise SchemaError unless ``schema`` uses only supported keywords, well formed."""
    if not isinstance(schema, dict):
        raise SchemaError("%s: a schema must be a JSON object" % path)
    unknown = set(schema) - KEYWORDS
    if unknown:
        raise SchemaError("%s: unsupported keyword(s) %s" % (path, ", ".join(sorted(unknown))))
    types = schema.get("type")
    for name in [types] if isinstance(types, str) else types or []:
        if name not in TYPES:
            raise SchemaError("%s: unknown type %r" % (path, name))
    for name, sub in (schema.get("properties") or {}).items():
        check_schema(sub, "%s.%s" % (path, name))
    if "items" in schema:
        check_schema(schema["items"], path + "[]")
    if not isinstance(schema.get("required", []), list):
        raise SchemaError("%s: required must be a list" % path)
    if not isinstance(schema.get("additionalProperties", True), bool):
        raise SchemaError("%s: additionalProperties must be true or false" % path)


def _is_type(value: Any, name: str) -> bool:
    if isinstance(value, bool) and name in ("integer", "number"):
        return False  # JSON's true is not a number, whatever Python thinks
    return isinstance(value, TYPES[name])


def validate(schema: dict[str, Any], value: Any, path: str = "$") -> list[str]:
    """Every way ``value`` breaks ``schema`` (at most MAX_ERRORS), as ``path: reason``."""
    errors: list[str] = []
    _validate(schema, value, path, errors)
    return errors[:MAX_ERRORS]


def _validate(schema: dict[str, Any], value: Any, path: str, errors: list[str]) -> None:
    if len(errors) >= MAX_ERRORS:
        return
    types = schema.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else types
        if not any(_is_type(value, name) for name in names):
            errors.append("%s: expected %s" % (path, " or ".join(names)))
            return
    if "enum" in schema and value not in schema["enum"]:
        errors.append("%s: must be one of %s" % (path, ", ".join(map(repr, schema["enum"]))))
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            errors.append("%s: shorter than %d characters" % (path, schema["minLength"]))
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append("%s: longer than %d characters" % (path, schema["maxLength"]))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append("%s: below %s" % (path, schema["minimum"]))
        if "maximum" in schema and value > schema["maximum"]:
            errors.append("%s: above %s" % (path, schema["maximum"]))
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        for name in schema.get("required", []):
            if name not in value:
                errors.append("%s.%s: required" % (path, name))
        for name, item in value.items():
            if name in properties:
                _validate(properties[name], item, "%s.%s" % (path, name), errors)
            elif schema.get("additionalProperties") is False:
                errors.append("%s.%s: not allowed" % (path, name))
    if isinstance(value, list):
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors.append("%s: more than %d items" % (path, schema["maxItems"]))
        if "items" in schema:
            for index, item in enumerate(value):
                _validate(schema["items"], item, "%s[%d]" % (path, index), errors)
