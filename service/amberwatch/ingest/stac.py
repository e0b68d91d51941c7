"""STAC item of an ingested scene (eo + projection + raster extensions)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pystac
from pystac.extensions.eo import Band, EOExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import DataType, RasterBand, RasterExtension
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from amberwatch.ingest.plan import ScenePlan
from amberwatch.types import REFLECTANCE_SCALE

_PLATFORM = {
    "sentinel2a": ("sentinel-2a", ["msi"], "sentinel-2"),
    "sentinel2b": ("sentinel-2b", ["msi"], "sentinel-2"),
    "sentinel2c": ("sentinel-2c", ["msi"], "sentinel-2"),
    "sentinel2": (None, ["msi"], "sentinel-2"),
    "landsat4": ("landsat-4", ["tm"], "landsat"),
    "landsat5": ("landsat-5", ["tm"], "landsat"),
    "landsat7": ("landsat-7", ["etm+"], "landsat"),
    "landsat8": ("landsat-8", ["oli", "tirs"], "landsat"),
    "landsat9": ("landsat-9", ["oli", "tirs"], "landsat"),
}


def build_item(
    plan: ScenePlan,
    footprint: BaseGeometry,
    resolution: float,
    cloud_cover: float | None,
    reflectance_path: Path,
    cloud_mask_path: Path | None,
    extra: dict[str, Any],
) -> dict[str, Any]:
    """The STAC item as a dict; asset hrefs are the absolute final paths."""
    grid = plan.grid
    platform, instruments, constellation = _PLATFORM.get(plan.sensor, (None, [], None))
    props: dict[str, Any] = {"amberwatch:sensor": plan.sensor, "amberwatch:family": plan.family,
                             "amberwatch:level": plan.level, **plan.properties, **extra}
    if platform:
        props["platform"] = platform
    if instruments:
        props["instruments"] = instruments
    if constellation:
        props["constellation"] = constellation
    props["gsd"] = resolution
    item = pystac.Item(
        id=plan.scene_key, geometry=mapping(footprint), bbox=list(footprint.bounds),
        datetime=plan.acquired, properties=props,
    )
    epsg = grid.crs.to_epsg()
    ProjectionExtension.add_to(item)
    proj = ProjectionExtension.ext(item)
    proj.apply(
        code=f"EPSG:{epsg}" if epsg else None, wkt2=None if epsg else grid.crs.to_wkt(),
        shape=[grid.height, grid.width], transform=list(grid.transform)[:6], bbox=list(grid.bounds),
    )
    EOExtension.add_to(item)
    RasterExtension.add_to(item)
    if cloud_cover is not None:
        EOExtension.ext(item).cloud_cover = round(cloud_cover, 3)

    uint16 = plan.output_dtype == "uint16"
    refl = pystac.Asset(
        href=str(reflectance_path.resolve()), media_type=pystac.MediaType.COG,
        title="Reflectance x 10000 (nodata 0)" if uint16 else "RGB (uint8, source values)",
        roles=["data", "reflectance"] if uint16 else ["data", "visual"],
    )
    item.add_asset("reflectance", refl)
    EOExtension.ext(refl).bands = [
        Band.create(name=b.band_id, common_name=b.name, center_wavelength=b.wavelength[0] if b.wavelength else None,
                    full_width_half_max=b.wavelength[1] if b.wavelength else None)
        for b in plan.bands
    ]
    RasterExtension.ext(refl).bands = [
        RasterBand.create(nodata=0, data_type=DataType.UINT16, scale=REFLECTANCE_SCALE, offset=0.0,
                          spatial_resolution=resolution)
        if uint16 else RasterBand.create(data_type=DataType.UINT8, spatial_resolution=resolution)
        for _ in plan.bands
    ]
    if cloud_mask_path is not None:
        mask = pystac.Asset(
            href=str(cloud_mask_path.resolve()), media_type=pystac.MediaType.COG,
            title="Cloud/shadow/invalid mask (1 = masked, 0 = clear)",
            description=plan.mask.description, roles=["cloud", "cloud-shadow"],
        )
        item.add_asset("cloud_mask", mask)
        RasterExtension.ext(mask).bands = [RasterBand.create(data_type=DataType.UINT8, spatial_resolution=resolution)]
    return item.to_dict(include_self_link=False, transform_hrefs=False)
