"""The base of hypo's typed records: the files that travel between stages, as frozen pydantic models.

A record is read from disk once, validated, and from then on read by attribute, never ``d["key"]``. Each record is
defined in the layer that owns its file (the dataset manifest in ``hypo.data.manifest``, the search record in
``hypo.search.record``, ...) and read and written there through one function pair. What they share is here:

- :class:`Record`: frozen, unknown keys ignored (a newer hypo may add fields), NaN kept as JSON's ``NaN`` as
  before, and optional fields that are None left out of the file (so a record that lacks a section writes what
  it wrote before the record was typed);
- :func:`parse_record`: validation whose error is one line naming the file and the first field at fault;
- :func:`schema_version_of`: the version a file declares (files written before their record was typed have none,
  version 1);
- :func:`config_type`: a frozen config dataclass (``hypo.config``) as a field, read with ``from_dict`` and written
  with ``to_dict``, so a record holds the config itself and its file the same dict the config always wrote.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, PlainSerializer, PlainValidator, ValidationError, model_serializer

from hypo.config import from_dict, to_dict
from hypo.errors import HypoError

R = TypeVar("R", bound="Record")


class Record(BaseModel):
    """A frozen, validated record of a hypo file (see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="ignore", ser_json_inf_nan="constants")

    @model_serializer(mode="wrap")
    def _leave_out_absent(self, handler: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
        data = handler(self)
        for name, field in type(self).model_fields.items():
            if field.default is None and getattr(self, name) is None:
                data.pop(name, None)
        return data

    def to_json(self) -> dict[str, Any]:
        """The record as the JSON object its file holds (field order as declared)."""
        return self.model_dump(mode="json")


def config_type(cls: type) -> Any:
    """A frozen config dataclass as a record field: validated with ``from_dict``, written with ``to_dict``."""

    def validate(value: Any) -> Any:
        return value if isinstance(value, cls) else from_dict(cls, value)

    return Annotated[cls, PlainValidator(validate), PlainSerializer(to_dict, return_type=dict)]


def field_error(exc: ValidationError) -> str:
    """The first error of a validation as ``field a.b: what is wrong`` (one line)."""
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "(the whole object)"
    msg = str(err["msg"]).removeprefix("Value error, ").splitlines()[0]
    return f"field {where}: {msg}"


def parse_record(cls: type[R], raw: Any, path: str, error: type[HypoError] = HypoError, hint: str = "") -> R:
    """Validate ``raw`` (a file's JSON) as a ``cls`` record.

    Args:
        cls: The record type.
        raw: The decoded JSON, already migrated to the current schema.
        path: The file, for the message.
        error: The exception to raise.
        hint: What to do, appended to the message (e.g. ``"; rebuild it with ..."``).

    Raises:
        HypoError: (``error``) one line naming the file and the field.
    """
    try:
        return cls.model_validate(raw)
    except ValidationError as exc:
        raise error(f"{path}: {field_error(exc)}{hint}") from None


def schema_version_of(raw: dict[str, Any]) -> int:
    """The schema version a record's file declares: its ``schema_version``, or 1 for a file written before."""
    version = raw.get("schema_version", 1)
    return version if isinstance(version, int) and not isinstance(version, bool) else -1
