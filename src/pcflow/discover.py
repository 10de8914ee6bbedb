"""STAC asset discovery: find what a dataset config asks for, record it unsigned.

Hrefs are stored unsigned; SAS tokens are fetched just in time by whoever reads the data
(`sign_asset_dict`, `sign_item_dicts`), so no token is ever written to disk.
"""

from __future__ import annotations

import copy
import logging
from datetime import datetime
from typing import Any

import planetary_computer
import pystac
import pystac_client
import requests
from cql2 import Expr
from pystac_client.conformance import ConformanceClasses
from pystac_client.exceptions import APIError
from pystac_client.stac_api_io import StacApiIO
from urllib3.util.retry import Retry

log = logging.getLogger(__name__)

# `stac:` config defaults (documented in config/README.md).
STAC_DEFAULTS: dict[str, Any] = {
    "timeout_s": 30,  # connect and read timeout of each request
    "retries": 5,  # per request, on connection errors and 429/5xx
    "backoff_s": 1.0,  # urllib3 backoff factor: waits 0, 2, 4, 8, ... s (capped at 60 s)
    "page_size": 100,  # items per page (`limit`)
    "max_items": 10000,  # more matches than this is a runaway query: stop
}
RETRY_STATUS = (429, 500, 502, 503, 504)

_QUERY_OPS = {"eq": "=", "neq": "<>", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}


class DiscoveryError(RuntimeError):
    """Discovery cannot go on; str() is one line saying what and how to fix it."""


def stac_settings(stac: dict[str, Any] | None = None) -> dict[str, Any]:
    """The `stac:` config section with its defaults filled in."""
    return {**STAC_DEFAULTS, **(stac or {})}


def stac_io(stac: dict[str, Any] | None = None) -> StacApiIO:
    """HTTP for the STAC API: a timeout on every request, retries with backoff on connection
    errors and 429/5xx for GET and POST alike (next pages of a search are POSTed), honouring
    Retry-After."""
    cfg = stac_settings(stac)
    retry = Retry(
        total=int(cfg["retries"]),
        connect=int(cfg["retries"]),
        read=int(cfg["retries"]),
        status=int(cfg["retries"]),
        backoff_factor=float(cfg["backoff_s"]),
        status_forcelist=RETRY_STATUS,
        allowed_methods=None,  # None = every method: a search page is a POST
        respect_retry_after_header=True,
        raise_on_status=False,  # the last answer reaches pystac-client, which names it
    )
    return StacApiIO(timeout=float(cfg["timeout_s"]), max_retries=retry)


def open_client(api_url: str, stac: dict[str, Any] | None = None) -> pystac_client.Client:
    """Open the STAC API (timeouts, retries), turning failures into one clear line."""
    try:
        return pystac_client.Client.open(
            api_url, stac_io=stac_io(stac), timeout=float(stac_settings(stac)["timeout_s"])
        )
    except (APIError, OSError, pystac.STACError, requests.RequestException) as err:
        raise DiscoveryError(
            f"STAC API {api_url} is unreachable ({type(err).__name__}: {str(err)[:120]}) — "
            "check `stac_api` in the config or PCFLOW_STAC_API (sandbox: `pcflow sandbox up`)"
        ) from None


def query_to_cql2(query: dict[str, Any]) -> dict[str, Any]:
    """Translate a STAC `query` extension object into an equivalent CQL2-JSON expression."""
    clauses = []
    for prop, ops in query.items():
        for op, value in ops.items():
            if op == "in":
                clauses.append({"op": "in", "args": [{"property": prop}, list(value)]})
            elif op in _QUERY_OPS:
                clauses.append({"op": _QUERY_OPS[op], "args": [{"property": prop}, value]})
            else:
                raise DiscoveryError(
                    f"query operator {op!r} on {prop} is not supported — use one of "
                    f"{sorted([*_QUERY_OPS, 'in'])}"
                )
    return clauses[0] if len(clauses) == 1 else {"op": "and", "args": clauses}


def client_side_filter(
    items: list[dict[str, Any]], query: dict | None, cql: dict | None
) -> list[dict]:
    """Apply `query` and `filter` locally for APIs that do not implement them."""
    exprs = [Expr(query_to_cql2(query))] if query else []
    if cql:
        exprs.append(Expr(cql))
    return [item for item in items if all(e.matches(item) for e in exprs)]


def _intersects(a: list[float], b: list[float]) -> bool:
    return a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]


def _parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def _check_extent(name: str, ds: dict[str, Any], collection: pystac.Collection) -> None:
    bboxes = collection.extent.spatial.bboxes
    if bboxes and not any(
        _intersects(ds["bbox"], b[:2] + b[-2:] if len(b) == 6 else b) for b in bboxes
    ):
        raise DiscoveryError(
            f"datasets.{name}.bbox {ds['bbox']} lies outside collection {collection.id}'s extent "
            f"{bboxes[0]} — choose a bbox inside it"
        )
    start, end = (
        _parse(t + ("T00:00:00+00:00" if len(t) == 10 else "")) for t in ds["datetime"].split("/")
    )
    for c_start, c_end in collection.extent.temporal.intervals:
        if (c_start is None or c_start.date() <= end.date()) and (
            c_end is None or start.date() <= c_end.date()
        ):
            return
    interval = collection.extent.temporal.intervals[0]
    raise DiscoveryError(
        f"datasets.{name}.datetime {ds['datetime']} does not overlap collection {collection.id}'s "
        f"time extent {[t.isoformat() if t else None for t in interval]} — choose a range inside it"
    )


def _get_collection(
    client: pystac_client.Client, name: str, collection_id: str
) -> pystac.Collection:
    try:
        collection = client.get_collection(collection_id)
    except (APIError, pystac.STACError, KeyError):
        collection = None
    if collection is None:
        available = sorted(c.id for c in client.get_collections())
        raise DiscoveryError(
            f"datasets.{name}.collection {collection_id!r} is not in the STAC API — "
            f"use one of: {', '.join(available[:20])}"
        )
    return collection


def _zarr_asset(name: str, ds: dict[str, Any], collection: pystac.Collection) -> dict[str, Any]:
    key = ds["asset"]
    if key not in collection.assets:
        raise DiscoveryError(
            f"datasets.{name}.asset {key!r} is not an asset of collection "
            f"{collection.id} — use one of: {', '.join(sorted(collection.assets))}"
        )
    asset = collection.assets[key].to_dict()
    asset["key"] = key
    return asset


def _search_items(
    client: pystac_client.Client, name: str, ds: dict[str, Any], stac: dict[str, Any]
) -> list[dict]:
    query, cql = ds.get("query"), ds.get("filter")
    server_query = server_filter = None
    if client.conforms_to(ConformanceClasses.FILTER) and (query or cql):
        # One CQL2 expression: stac-fastapi-pgstac rejects `query` and `filter` together.
        parts = ([query_to_cql2(query)] if query else []) + ([cql] if cql else [])
        server_filter = parts[0] if len(parts) == 1 else {"op": "and", "args": parts}
        query = cql = None
    elif query and client.conforms_to(ConformanceClasses.QUERY):
        server_query, query = query, None
    if query or cql:
        log.info("STAC API lacks query/filter conformance: filtering client-side with cql2")
    cfg = stac_settings(stac)
    limit = int(cfg["max_items"])
    search = client.search(
        collections=[ds["collection"]],
        bbox=ds["bbox"],
        datetime=ds["datetime"],
        query=server_query,
        filter=server_filter,
        filter_lang="cql2-json" if server_filter else None,
        limit=int(cfg["page_size"]),
        max_items=limit + 1,  # one more than allowed tells a runaway query from a full one
    )
    # Items exactly as served (no pystac round trip: it upgrades extensions and fields).
    try:
        items = list(search.items_as_dicts())
    except (APIError, requests.RequestException) as err:
        raise DiscoveryError(
            f"datasets.{name}: STAC search at {client.self_href} failed after "
            f"{cfg['retries']} retries ({type(err).__name__}: {str(err)[:160]}) — retry later or "
            "raise stac.retries / stac.timeout_s"
        ) from None
    if len(items) > limit:
        raise DiscoveryError(
            f"datasets.{name}: the search matches more than stac.max_items={limit} items — "
            "narrow bbox/datetime/query, or raise stac.max_items if you mean it"
        )
    items = client_side_filter(
        items, None if server_query else query, None if server_filter else cql
    )
    items.sort(key=lambda i: (i["properties"].get("datetime") or "", i["id"]))  # stable order
    if not items:
        raise DiscoveryError(
            f"datasets.{name}: no items match collections={[ds['collection']]} bbox={ds['bbox']} "
            f"datetime={ds['datetime']} query={ds.get('query')} filter={ds.get('filter')}"
            " — widen the bbox/time or relax the query"
        )
    missing = sorted({a for a in ds["assets"] if any(a not in i["assets"] for i in items)})
    if missing:
        raise DiscoveryError(
            f"datasets.{name}.assets {missing} are missing from matched items — use "
            f"asset keys present in every item: {', '.join(sorted(items[0]['assets']))}"
        )
    return items


def discover(
    name: str, ds: dict[str, Any], api_url: str, stac: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Search the STAC API for one dataset; return the unsigned items document (items.json).

    `items` holds each item's JSON exactly as the API served it; pcflow's own fields
    (`item_ids`, `item_updated`, `collection_item_assets`, ...) sit beside it. `stac` is
    the config's `stac:` section (timeouts, retries, page size, max_items).
    """
    stac = stac_settings(stac)
    client = open_client(api_url, stac)
    collection = _get_collection(client, name, ds["collection"])
    _check_extent(name, ds, collection)
    doc: dict[str, Any] = {
        "dataset": name,
        "kind": ds["kind"],
        "stac_api": api_url,
        "collection": collection.id,
        "signing": ds.get("signing", "planetary-computer"),
        "query": {
            "collections": [collection.id],
            "bbox": ds["bbox"],
            "datetime": ds["datetime"],
            "query": ds.get("query"),
            "filter": ds.get("filter"),
        },
        "collection_updated": collection.extra_fields.get("updated"),
        "msft:region": collection.extra_fields.get("msft:region"),
        "asset": None,
        "items": [],
    }
    if ds["kind"] == "zarr":
        doc["asset"] = _zarr_asset(name, ds, collection)
        _check_variables(name, ds, collection)
    else:
        doc["items"] = _search_items(client, name, ds, stac)
        # The band types staging and the plan use when items lack raster:bands.
        doc["collection_item_assets"] = collection.to_dict(transform_hrefs=False).get("item_assets")
    doc["item_ids"] = [i["id"] for i in doc["items"]]
    doc["item_updated"] = {
        i["id"]: i["properties"].get("updated") or i["properties"].get("datetime")
        for i in doc["items"]
    }
    return doc


def _check_variables(name: str, ds: dict[str, Any], collection: pystac.Collection) -> None:
    known = collection.extra_fields.get("cube:variables")
    if not known or not ds.get("variables"):
        return
    unknown = [v for v in ds["variables"] if v not in known]
    if unknown:
        raise DiscoveryError(
            f"datasets.{name}.variables {unknown} are not in collection "
            f"{collection.id} — use some of: {', '.join(sorted(known))}"
        )


def sign_asset_dict(asset: dict[str, Any], signing: str) -> dict[str, Any]:
    """A signed copy of an asset dict (href and xarray storage options), per the signing policy."""
    asset = copy.deepcopy(asset)
    if signing != "planetary-computer":
        return asset
    key = asset.pop("key", None)
    signed = planetary_computer.sign(pystac.Asset.from_dict(asset)).to_dict()
    if key is not None:
        signed["key"] = key
    return signed


def sign_item_dicts(items: list[dict[str, Any]], signing: str) -> list[pystac.Item]:
    """Signed pystac Items (copies) for reading, per the signing policy."""
    result = [pystac.Item.from_dict(copy.deepcopy(i)) for i in items]
    if signing == "planetary-computer":
        result = [planetary_computer.sign(i) for i in result]
    return result
