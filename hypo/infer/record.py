"""The base of the typed records the infer and evaluate layers read and write as JSON (pydantic v2, frozen).

A record is validated once, where it is read (:func:`parse_record`): a wrong or missing field stops with one line
naming the file and the field. Written (:meth:`Record.to_dict`), it gives the same JSON the code wrote before it
was typed: fields in the order declared, values as they were (NaN stays NaN, as Python's ``json`` writes it), and
the optional fields a record names in ``OMIT_IF_NONE`` left out while they are None (a section older files lack).
The hypo configs (:class:`~hypo.config.LabelConfig`, :class:`~hypo.config.FillConfig`, the model config) are
fields as themselves (:func:`config_field`): read with :func:`~hypo.config.from_dict`, written with
:func:`~hypo.config.to_dict`.
"""

from __future__ import annotations

import json
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

from hypo.errors import HypoError

R = TypeVar("R", bound="Record")


class Record(BaseModel):
    """A frozen, validated record that is written as JSON (see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    OMIT_IF_NONE: ClassVar[frozenset[str]] = frozenset()

    @model_serializer(mode="wrap")
    def _written(self, handler) -> dict[str, Any]:
        out = handler(self)
        return {k: v for k, v in out.items() if not (v is None and k in self.OMIT_IF_NONE)}

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-ready Python values (what its file holds)."""
        return self.model_dump(mode="python")

    @classmethod
    def from_dict(cls: type[R], data: Any, where: str) -> R:
        """The record of decoded JSON from ``where``, validated (see :func:`parse_record`)."""
        return parse_record(cls, data, where)

    def write(self, path: str, indent: int | None = 2) -> str:
        """Write the record as JSON to ``path``; returns ``path``."""
        with open(path, "w") as f:
            json.dump(self.to_dict(), f, indent=indent)
        return path

    @classmethod
    def read(cls: type[R], path: str) -> R:
        """The record in the JSON file ``path``, validated.

        Raises:
            HypoError: Unreadable, not JSON, or a wrong field (one line naming the file and the field).
        """
        try:
            with open(path) as f:
                data = json.load(f)
        except (OSError, json.JSONDecodeError) as exc:
            raise HypoError(f"{path}: not readable JSON ({exc})") from None
        return cls.from_dict(data, path)


def config_field(cls: type) -> Any:
    """A field holding a hypo config dataclass, read with ``from_dict`` and written with ``to_dict``."""
    from hypo.config import from_dict, to_dict

    def read(value: Any) -> Any:
        return value if isinstance(value, cls) else from_dict(cls, value)  # ConfigError is a ValueError

    return Annotated[cls, PlainValidator(read), PlainSerializer(to_dict, return_type=dict),
                     WithJsonSchema({"type": "object", "title": cls.__name__})]


def field_error(exc: ValidationError) -> str:
    """The first problem of a validation error as ``field a.b: what is wrong`` (one line)."""
    err = exc.errors(include_url=False)[0]
    loc = ".".join(str(p) for p in err["loc"]) or "(the record)"
    msg = err["msg"] if err["type"] != "missing" else "missing"
    return f"field {loc}: {msg}".splitlines()[0]


def parse_record(cls: type[R], data: Any, where: str, hint: str = "") -> R:
    """Validate ``data`` as ``cls``.

    Args:
        cls: The record type.
        data: The decoded JSON.
        where: The file it came from (first in the message).
        hint: What to do about it, appended to the message.

    Raises:
        HypoError: One line naming ``where`` and the first wrong field.
    """
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise HypoError(f"{where}: {field_error(exc)}" + (f"; {hint}" if hint else "")) from None
