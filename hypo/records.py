"""The base of hypo's typed records: the files that travel between stages and layers, as frozen pydantic models.

A record is read from disk once, validated, and from then on read by attribute, never ``d["key"]``. Each record is
defined in the layer that owns its file and read and written there through one function pair: the dataset
manifest (:mod:`hypo.data.manifest`), the search record (:mod:`hypo.search.record`), the exported model's sidecar
(:mod:`hypo.infer.sidecar`), the alarm and external results (:mod:`hypo.evaluate.alarms.result`,
:mod:`hypo.evaluate.external.result`). What they share is here, once:

- :class:`Record`: frozen; unknown keys ignored (a newer hypo may add an optional field); written
  (:meth:`Record.to_dict`) as exactly the JSON the code wrote before it was typed: fields in the order declared,
  NaN kept as ``NaN`` (as Python's ``json`` writes it), and a field whose default is None left out of the file
  while it is None (a section older files lack), unless the record names it in ``KEEP_NULL`` (a value that has
  always been written as ``null``). Records kept as plain local files use :meth:`Record.write` /
  :meth:`Record.read`; :meth:`Record.dumps` is the one text form, so two copies of a record are written alike
  (the sidecar inside ``model.pt`` and beside it, which adds only ``model_sha256``);
- :func:`parse_record`: validation whose error is one line, ``FILE: field a.b: what is wrong``, and what to do;
- :func:`schema_version_of`: the version a file declares (files written before their record was typed have none:
  version 1), which each versioned record's ``migrate`` reads to bring an older file to the current schema;
- :func:`config_field`: a frozen config dataclass (:mod:`hypo.config`) as a field, read with ``from_dict`` and
  written with ``to_dict``, so a record holds the config itself and its file the same dict the config always wrote.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    PlainSerializer,
    PlainValidator,
    ValidationError,
    WithJsonSchema,
    model_serializer,
)

from hypo.config import from_dict, to_dict
from hypo.errors import HypoError

R = TypeVar("R", bound="Record")


class Record(BaseModel):
    """A frozen, validated record of a hypo file (see the module docstring).

    Attributes:
        KEEP_NULL: Fields with a None default written as ``null`` while None (the others are left out).
    """

    model_config = ConfigDict(frozen=True, extra="ignore", ser_json_inf_nan="constants")
    KEEP_NULL: ClassVar[frozenset[str]] = frozenset()

    @model_serializer(mode="wrap")
    def _leave_out_absent(self, handler: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
        data = handler(self)
        for name, field in type(self).model_fields.items():
            if field.default is None and getattr(self, name) is None and name not in self.KEEP_NULL:
                data.pop(name, None)
        return data

    def to_dict(self) -> dict[str, Any]:
        """The record as the JSON object its file holds (JSON-ready Python values, NaN kept)."""
        return self.model_dump(mode="json")

    def dumps(self, indent: int | None = 2) -> str:
        """The record as JSON text (what :meth:`write` writes)."""
        return json.dumps(self.to_dict(), indent=indent)

    def write(self, path: str, indent: int | None = 2) -> str:
        """Write the record as JSON to the local file ``path``; returns ``path``."""
        with open(path, "w") as f:
            f.write(self.dumps(indent))
        return path

    @classmethod
    def from_dict(cls: type[R], data: Any, where: str) -> R:
        """The record of decoded JSON from ``where``, validated (:func:`parse_record`).

        The migration hook: a versioned record read by :meth:`read` overrides it to bring older schemas to its own
        first (:class:`hypo.infer.sidecar.Sidecar`); the manifest and the search record run their ``migrate`` in
        their read functions, which read through :mod:`hypo.storage` (local or cloud).
        """
        return parse_record(cls, data, where)

    @classmethod
    def read(cls: type[R], path: str) -> R:
        """The record in the local JSON file ``path``, migrated and validated.

        Raises:
            HypoError: Unreadable, not JSON, or a wrong field (one line naming the file and the field).
        """
        try:
            with open(path) as f:
                data = json.load(f)
        except (OSError, json.JSONDecodeError) as exc:
            raise HypoError(f"{path}: not readable JSON ({exc})".splitlines()[0]) from None
        return cls.from_dict(data, path)


def config_field(cls: type) -> Any:
    """A frozen config dataclass as a record field: validated with ``from_dict``, written with ``to_dict``."""

    def validate(value: Any) -> Any:
        return value if isinstance(value, cls) else from_dict(cls, value)  # ConfigError is a ValueError

    return Annotated[cls, PlainValidator(validate), PlainSerializer(to_dict, return_type=dict),
                     WithJsonSchema({"type": "object", "title": cls.__name__})]


def field_error(exc: ValidationError) -> str:
    """The first error of a validation as ``field a.b: what is wrong`` (one line)."""
    err = exc.errors(include_url=False)[0]
    where = ".".join(str(p) for p in err["loc"]) or "(the whole record)"
    msg = "missing" if err["type"] == "missing" else str(err["msg"]).removeprefix("Value error, ")
    return f"field {where}: {msg}".splitlines()[0]


def parse_record(cls: type[R], raw: Any, path: str, *, hint: str = "", error: type[HypoError] = HypoError) -> R:
    """Validate ``raw`` (a file's decoded JSON, already migrated to the current schema) as a ``cls`` record.

    Args:
        cls: The record type.
        raw: The decoded JSON.
        path: The file it came from (first in the message).
        hint: What to do about it (e.g. ``"re-export it: ..."``), appended after ``; ``.
        error: The exception to raise (a :class:`~hypo.errors.HypoError`).

    Raises:
        HypoError: (``error``) one line: ``PATH: field a.b: what is wrong; HINT``.
    """
    try:
        return cls.model_validate(raw)
    except ValidationError as exc:
        raise error(f"{path}: {field_error(exc)}" + (f"; {hint}" if hint else "")) from None


def schema_version_of(raw: dict[str, Any]) -> int:
    """The schema version a record's file declares: its ``schema_version``, 1 for a file written before, -1 for junk."""
    version = raw.get("schema_version", 1)
    return version if isinstance(version, int) and not isinstance(version, bool) else -1
