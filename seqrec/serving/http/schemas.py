"""Request and response models of the HTTP API, and the limits in its OpenAPI schema.

JSON bodies: an item id is a JSON string or integer (never a boolean, or a float with a
fraction), ``k`` an integer (``2.0`` is one, as in JSON Schema), a flag a JSON boolean.
The server's limits are checked by the runtime (with their own error codes), so they
are written into the OpenAPI schema by :func:`document_limits`, not as pydantic
constraints.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictStr

from seqrec.serving.options import RuntimeOptions


def _json_number(value: Any) -> Any:
    """Refuse what pydantic would coerce into an integer: booleans and strings."""
    if isinstance(value, bool | str):
        raise ValueError(f"expected a JSON integer, got {type(value).__name__}")
    return value


def _json_id(value: Any) -> Any:
    """Refuse what pydantic would coerce into an item id: booleans (true is not "1")."""
    if isinstance(value, bool):
        raise ValueError("expected a string or an integer, got a boolean")
    return value


ItemId = Annotated[str | int, BeforeValidator(_json_id)]
Count = Annotated[int, BeforeValidator(_json_number)]


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    k: Count = Field(20, description="number of items to return (1 .. the server's cap)")
    exclude_history: StrictBool = Field(False, description="never return items of the session")
    allow: list[ItemId] | None = Field(None, description="only return these items")
    deny: list[ItemId] | None = Field(None, description="never return these items")
    strict: StrictBool | None = Field(
        None, description="reject unknown item ids (default: the server's --strict)"
    )


class EventIn(_Options):
    item: ItemId = Field(..., description="the clicked item (external id)")


class ItemsIn(_Options):
    items: list[ItemId] = Field(..., description="the clicks so far, oldest first")


class ReloadIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: StrictStr | None = Field(None, description="model directory (default: the current one)")


class RecommendationsOut(BaseModel):
    items: list[str]
    scores: list[float]
    unknown_items: list[str]
    model_version: str
    unknown_filter_items: list[str] | None = None
    session_length: int | None = None
    restarted: bool | None = None


class ForgetOut(BaseModel):
    session_id: str
    deleted: bool


class ModelInfoOut(BaseModel):
    name: str
    version: str = Field(..., description="content hash of the model files")
    items: int
    trained_at: str | None
    recurrent: bool
    directory: str = Field(..., description="name of the model directory (not its path)")
    loaded_at: str
    config: dict[str, Any]
    top_k: str


class ModelOut(ModelInfoOut):
    reloads: int
    store: dict[str, Any]


class ReloadOut(BaseModel):
    status: str
    model: ModelInfoOut


class RestartOut(BaseModel):
    status: str
    model: str = Field(..., description="name of the model directory")


class StatusOut(BaseModel):
    status: str


class ReadyOut(StatusOut):
    model: str
    version: str


class ErrorDetail(BaseModel):
    loc: list[str]
    msg: str | None = None
    type: str | None = None


class ErrorBody(BaseModel):
    code: str = Field(..., description="machine-readable error code (see the README)")
    message: str = Field(..., description="what was wrong, for a person")
    details: list[ErrorDetail] | None = Field(
        None, description="per-field problems (invalid_request only)"
    )


class ErrorOut(BaseModel):
    """Every error answer: ``{"error": {"code": ..., "message": ...}}``."""

    error: ErrorBody


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` of a route: these statuses answer with :class:`ErrorOut`."""
    return {s: {"model": ErrorOut} for s in statuses}


def id_schema(limits: RuntimeOptions) -> dict[str, Any]:
    """JSON schema of one item id as the runtime accepts it (at most max_item_id chars)."""
    n = limits.max_item_id
    return {
        "anyOf": [
            {"type": "string", "maxLength": n},
            {"type": "integer", "minimum": -(10 ** (n - 1) - 1), "maximum": 10**n - 1},
        ]
    }


def document_limits(schema: dict[str, Any], limits: RuntimeOptions) -> None:
    """Write the server's request limits into its OpenAPI schema (in place), so the
    schema describes exactly what is accepted (the runtime checks them, with their own
    error codes, so they are not pydantic constraints)."""
    k = {"minimum": 1, "maximum": limits.max_k}
    ids = id_schema(limits)
    str_id = {"type": "string", "maxLength": limits.max_item_id}
    for name in ("EventIn", "ItemsIn"):
        props = schema["components"]["schemas"][name]["properties"]
        props["k"].update(k)
        for key in ("allow", "deny"):
            props[key]["anyOf"][0].update(items=ids, maxItems=limits.max_filter_items)
        if "item" in props:
            props["item"].update(ids)
        if "items" in props:
            props["items"].update(items=ids, maxItems=limits.max_items)
    for ops in schema["paths"].values():
        for op in ops.values():
            for param in op.get("parameters", []):
                ps = param["schema"]
                if param["name"] == "session_id":
                    ps.update(minLength=1, maxLength=limits.max_session_id)
                elif param["name"] == "k":
                    ps.update(k)
                elif param["name"] in ("allow", "deny"):
                    ps["anyOf"][0].update(items=str_id, maxItems=limits.max_filter_items)
