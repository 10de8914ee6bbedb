"""Offline STAC JSON-schema validation for tests: the vendored schemas, never the network.

tests/fixtures/stac-schemas/<host>/<path> holds each schema at the path of its URL (sources in
tests/fixtures/README.md). A `$ref` or `stac_extensions` URL that is not vendored fails the test
instead of being fetched.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import referencing
import referencing.jsonschema
from jsonschema_specifications import REGISTRY as METASCHEMAS

ROOT = Path(__file__).parent / "fixtures" / "stac-schemas"
CORE = {
    "Collection": "https://schemas.stacspec.org/v1.0.0/collection-spec/json-schema/collection.json"
}


class NotVendored(LookupError):
    """A schema URL that tests/fixtures/stac-schemas does not hold."""


def _retrieve(uri: str) -> referencing.Resource:
    path = ROOT / uri.split("://", 1)[-1].split("#")[0]
    if not path.is_file():
        raise NotVendored(f"{uri} is not vendored in {ROOT} (no network in tests)")
    return referencing.Resource.from_contents(
        json.loads(path.read_text()), default_specification=referencing.jsonschema.DRAFT7
    )


def registry() -> referencing.Registry:
    return referencing.Registry(retrieve=_retrieve).combine(METASCHEMAS)


def validate(doc: dict[str, Any]) -> list[str]:
    """Validate against the core schema of its type and every declared extension; return the
    schema URLs used. Raises jsonschema.ValidationError or NotVendored."""
    reg = registry()
    urls = [CORE[doc["type"]], *doc.get("stac_extensions", [])]
    for url in urls:
        schema = reg.get_or_retrieve(url).value.contents
        jsonschema.Draft7Validator(schema, registry=reg).validate(doc)
    return urls
