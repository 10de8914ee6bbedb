"""Put the demo data where MPC would have it: blobs in Azurite, JSON for the STAC API.

Uploads happen only when needed: each seeded container holds a marker blob recording a hash
of the generator (the demo_data package's source + library versions) and the sha256 of every file. A
later `up` whose generator hash matches the marker skips generation and upload entirely.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient, ContentSettings

from pcflow.sandbox import accounts, demo_data
from pcflow.sandbox.services import Context

MARKER_BLOB = "pcflow-sandbox-seed.json"
STAC_COLLECTIONS = (demo_data.DAYMET_COLLECTION, demo_data.S2_COLLECTION)


def blob_url(azurite_port: int) -> str:
    return f"https://127.0.0.1:{azurite_port}"


# -- STAC JSON for rustac -----------------------------------------------------------------------


def stac_files(stac_dir: Path) -> list[Path]:
    """Files handed to `rustac serve`, collections before their items."""
    return [
        stac_dir / f"{demo_data.DAYMET_COLLECTION}.json",
        stac_dir / f"{demo_data.S2_COLLECTION}.json",
        stac_dir / f"{demo_data.S2_COLLECTION}-items.json",
    ]


def write_stac_files(stac_dir: Path, azurite_port: int) -> list[Path]:
    """(Re)write the demo collections/items; hrefs point at this sandbox's Azurite port."""
    stac_dir.mkdir(parents=True, exist_ok=True)
    base = blob_url(azurite_port)
    daymet_path, s2_path, items_path = stac_files(stac_dir)
    items = [demo_data.s2_item(scene, base) for scene in demo_data.s2_scenes()]
    docs = [
        (daymet_path, demo_data.daymet_collection(base)),
        (s2_path, demo_data.s2_collection()),
        (items_path, {"type": "FeatureCollection", "features": items}),
    ]
    for path, doc in docs:
        path.write_text(json.dumps(doc, indent=1) + "\n")
    return [p for p, _ in docs]


# -- blobs --------------------------------------------------------------------------------------


def generator_hash() -> str:
    """Changes whenever the demo data could change: generator source or encoder versions."""
    from importlib.metadata import version

    h = hashlib.sha256()
    # Every module of the demo_data package: the generators live in its submodules.
    for source in sorted(Path(demo_data.__file__).parent.glob("*.py")):
        h.update(f"{source.name}:".encode() + source.read_bytes())
    h.update(demo_data.MPC_DAYMET_TEMPLATE.read_bytes())  # the catalog entry's template
    # Versions from package metadata (no imports: keeps a warm `up` fast). rasterio wheels
    # bundle GDAL, so rasterio's version stands for the GDAL that writes the COGs.
    for dist in ("numpy", "pandas", "xarray", "zarr", "numcodecs", "rasterio", "pyproj"):
        h.update(f"{dist}={version(dist)};".encode())
    return h.hexdigest()


def service_client(ctx: Context, account: str) -> BlobServiceClient:
    return BlobServiceClient(
        accounts.blob_endpoint(ctx.port(0), account),
        credential={"account_name": account, "account_key": ctx.keys[account]},
        connection_verify=str(ctx.certs.bundle),
    )


def _marker(client: BlobServiceClient, container: str) -> dict | None:
    try:
        data = client.get_blob_client(container, MARKER_BLOB).download_blob().readall()
        return json.loads(data)
    except (ResourceNotFoundError, ValueError):
        return None


def _ensure_container(client: BlobServiceClient, container: str, public: str | None) -> None:
    try:
        client.create_container(container, public_access=public)
    except ResourceExistsError:
        client.get_container_client(container).set_container_access_policy(
            signed_identifiers={}, public_access=public
        )


def _upload_tree(client: BlobServiceClient, container: str, files: dict[str, Path]) -> dict:
    """Upload {blob name: local file}; returns {blob name: sha256}."""
    cc = client.get_container_client(container)

    def put(item: tuple[str, Path]) -> tuple[str, str]:
        name, path = item
        data = path.read_bytes()
        content_type = "image/tiff" if name.endswith(".tif") else "application/octet-stream"
        if name.endswith((".zarray", ".zattrs", ".zgroup", ".zmetadata", ".json")):
            content_type = "application/json"
        cc.upload_blob(
            name,
            data,
            overwrite=True,
            content_settings=ContentSettings(content_type=content_type),
        )
        return name, hashlib.sha256(data).hexdigest()

    with ThreadPoolExecutor(max_workers=8) as pool:
        return dict(sorted(pool.map(put, sorted(files.items()))))


def _seed_container(
    ctx: Context,
    account: str,
    container: str,
    public: str | None,
    make_files: Callable[[Path], dict[str, Path]],
    label: str,
) -> str:
    client = service_client(ctx, account)
    _ensure_container(client, container, public)
    wanted = generator_hash()
    marker = _marker(client, container)
    if marker and marker.get("generator") == wanted:
        return (
            f"seed: {label} already present ({account}/{container}, {len(marker['files'])} blobs)"
        )
    with tempfile.TemporaryDirectory(prefix="pcflow-seed-") as tmp:
        files = make_files(Path(tmp))
        hashes = _upload_tree(client, container, files)
    # Blobs of an older generator that the new one no longer writes would linger in the store.
    stale = sorted(set((marker or {}).get("files", {})) - set(hashes))
    for name in stale:
        try:
            client.get_blob_client(container, name).delete_blob()
        except ResourceNotFoundError:
            pass
    doc = {"generator": wanted, "files": hashes}
    client.get_blob_client(container, MARKER_BLOB).upload_blob(
        json.dumps(doc, indent=1).encode(), overwrite=True
    )
    return f"seed: {label} uploaded ({account}/{container}, {len(hashes)} blobs)"


def _cached_daymet_zarr(tmp: Path) -> Path:
    """The demo store, generated once per generator version and kept on local disk: making the
    real-shaped store (6 chunks of 242 MB decoded) costs more than uploading it."""
    import os
    import shutil

    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pcflow-demo-data"
    root = cache / generator_hash()[:16] / "hi.zarr"
    if (root / ".zmetadata").exists():
        return root
    try:
        root.parent.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix="hi.zarr.", dir=root.parent))
        demo_data.write_daymet_zarr(partial / "hi.zarr")
        os.replace(partial / "hi.zarr", root)  # atomic: another process may have won
        shutil.rmtree(partial, ignore_errors=True)
        return root
    except OSError:  # another process won the rename, or a read-only/full home
        if (root / ".zmetadata").exists():
            return root
        return demo_data.write_daymet_zarr(tmp / "hi.zarr")


def _daymet_files(tmp: Path) -> dict[str, Path]:
    root = _cached_daymet_zarr(tmp)
    return {
        f"{demo_data.DAYMET_PATH}/{p.relative_to(root).as_posix()}": p
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _s2_files(tmp: Path) -> dict[str, Path]:
    files = {}
    for scene in demo_data.s2_scenes():
        for band, array in scene.arrays.items():
            name = scene.blob_path(band)
            path = tmp / name.replace("/", "__")
            files[name] = demo_data.write_cog(path, array, band)
    return files


def seed_all(ctx: Context) -> list[str]:
    """Seed both demo datasets (if absent) and create the user's target container."""
    messages = [
        _seed_container(
            ctx,
            demo_data.DAYMET_ACCOUNT,
            demo_data.DAYMET_CONTAINER,
            None,  # private: readers need a SAS token from the SAS endpoint, as on MPC
            _daymet_files,
            "daymet-daily-hi Zarr",
        ),
        _seed_container(
            ctx,
            demo_data.S2_ACCOUNT,
            demo_data.S2_CONTAINER,
            "blob",  # public blobs: planetary_computer.sign_url only signs *.blob.core.windows.net
            _s2_files,
            "sentinel-2-l2a COGs",
        ),
    ]
    target = service_client(ctx, accounts.TARGET_ACCOUNT)
    try:
        target.create_container(accounts.TARGET_CONTAINER)
        messages.append(f"seed: created target container {accounts.TARGET_ACCOUNT}/pcflow")
    except ResourceExistsError:
        pass
    return messages
