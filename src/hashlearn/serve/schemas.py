"""Pydantic models of every request and response of the service (they make the OpenAPI
schema at ``/openapi.json`` and ``/docs``).

Requests forbid unknown keys (``"topk"`` is an error, not silently ignored) and take
integers strictly (``"k": "5"`` is refused). Codes are checked further by
:func:`hashlearn.serve.service.parse_codes` (hex length, byte range), which names the
offending item.
"""

from __future__ import annotations

from typing import Annotated, Any, Optional

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, StrictInt, StrictStr, WithJsonSchema


def _check_code(value):
    if isinstance(value, str) or (isinstance(value, list) and all(type(byte) is int for byte in value)):
        return value
    raise ValueError("must be a hex string or a list of integers 0..255")


#: a code: hex string of its bytes in storage order, or a list of byte values 0..255
Code = Annotated[Any, PlainValidator(_check_code), WithJsonSchema({
    "anyOf": [{"type": "string", "pattern": "^([0-9a-fA-F]{2})+$"},
              {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 255}}]})]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _QueryFields(_Request):
    """Exactly one of ``queries``, ``inputs``, ``texts`` or ``images``."""

    queries: Optional[list[Code]] = Field(None, description="packed codes: hex strings or lists of byte values 0..255")
    inputs: Optional[list[Any]] = Field(
        None, description="raw model inputs, one per query, shaped as the model takes them (needs --model)")
    texts: Optional[list[StrictStr]] = Field(None, description="texts, for a model trained on text features (needs --model)")
    images: Optional[list[StrictStr]] = Field(None, description="base64 PNG or JPEG images (needs --model)")


class SearchRequest(_QueryFields):
    """``POST /search``: the ``k`` nearest neighbours of each query."""

    k: StrictInt = Field(10, description="neighbours per query (rows are padded with id -1 when fewer exist)")
    query_vectors: Optional[list[list[float]]] = Field(
        None, description="float vectors, one per query, for a two-stage index that re-ranks by them")


class RangeSearchRequest(_QueryFields):
    """``POST /range_search``: everything within Hamming distance ``radius`` of each query."""

    radius: StrictInt = Field(..., description="inclusive Hamming radius, 0..n_bits")


class EncodeRequest(_QueryFields):
    """``POST /encode``: the model's codes for raw inputs, texts or images."""


class AddRequest(_Request):
    """``POST /add`` (``--writable`` only): add codes, or inputs the model encodes."""

    codes: Optional[list[Code]] = Field(None, description="packed codes to add")
    inputs: Optional[list[Any]] = None
    texts: Optional[list[StrictStr]] = None
    images: Optional[list[StrictStr]] = None
    ids: Optional[list[StrictInt]] = Field(None, description="one unique non-negative id per item (default: the next free ids)")


class RemoveRequest(_Request):
    """``POST /remove`` (``--writable`` only): remove items by id (unknown ids are ignored)."""

    ids: list[StrictInt] = Field(..., description="ids to remove")


class HealthResponse(BaseModel):
    status: str = Field(..., examples=["ok"])
    ntotal: int


class InfoResponse(BaseModel):
    kind: str
    class_: str = Field(..., alias="class")
    n_bits: int
    n_bytes: int
    ntotal: int
    description: str
    hashlearn_version: str
    writable: bool
    auth: bool = Field(..., description="whether requests need the API key")
    model: Optional[dict[str, Any]] = Field(None, description="the model queries are encoded with (--model), if any")
    accepts: list[str] = Field(..., description="the query fields this server takes")
    limits: dict[str, float] = Field(..., description="request budget and connection limits")


class SearchResponse(BaseModel):
    distances: list[list[Optional[float]]] = Field(
        ..., description="Hamming distances (int), or float re-ranking distances with null for missing results")
    ids: list[list[int]]
    labels: Optional[list[list[Any]]] = Field(None, description="the label of each result, when the server knows them")


class RangeHits(BaseModel):
    distances: list[int]
    ids: list[int]
    labels: Optional[list[Any]] = None


class RangeSearchResponse(BaseModel):
    results: list[RangeHits]


class EncodeResponse(BaseModel):
    codes: list[str] = Field(..., description="hex strings of the packed codes")
    n_bits: int


class WriteResponse(BaseModel):
    added: int = 0
    removed: int = 0
    ntotal: int


class ErrorResponse(BaseModel):
    error: str = Field(..., description="what was wrong, naming the field")
    detail: Optional[list[dict[str, Any]]] = Field(None, description="validation errors: loc (field path), msg, type")
