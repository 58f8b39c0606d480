"""The two source adapters behind one port (``SourceSpec``): FHIR R4 and the plain JSON API."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import partial

from .etl_pass import SourceSpec
from .fhir import first_fhir_url, map_fhir_bundle
from .mapping import MappedPage
from .plain_json import first_json_url, map_json_page

__all__ = ["source_spec"]


def source_spec(kind: str, base_url: str, default_zone: str, default_region: str) -> SourceSpec:
    base = base_url.rstrip("/")
    mapper: Callable[..., MappedPage]
    if kind == "fhir":
        first, mapper = first_fhir_url, map_fhir_bundle
    elif kind == "json":
        first, mapper = first_json_url, map_json_page
    else:
        raise ValueError(f"unknown source kind {kind!r}")

    def first_url(start: datetime, end: datetime, since: datetime | None, page_size: int) -> str:
        return first(base, start=start, end=end, since=since, page_size=page_size)

    return SourceSpec(
        f"{kind}:{base}", first_url, partial(mapper, default_zone=default_zone, default_region=default_region)
    )
