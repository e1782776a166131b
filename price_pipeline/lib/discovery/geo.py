"""Offline address standardisation and ZIP-centroid coordinates for hospitals.

* :func:`standardize_address` parses a free-text US street address with ``usaddress`` (a CRF
  model shipped inside the package) and rebuilds it in USPS style: upper case, standard
  street-suffix, directional and unit abbreviations (``1200 Alhambra Boulevard, Suite 3`` ->
  ``1200 ALHAMBRA BLVD STE 3``).
* :func:`zip_centroid` looks a 5-digit ZIP up in the table shipped by the ``zipcodes`` package
  (lat/long centroid and county). No network geocoder is ever called: coordinates are the ZIP's
  centroid, good to a few km, and ``geo_source`` says so.
"""

from __future__ import annotations

import functools
import re
from typing import Any

_SUFFIXES = {
    "AVENUE": "AVE", "AV": "AVE", "BOULEVARD": "BLVD", "CIRCLE": "CIR", "COURT": "CT", "DRIVE": "DR",
    "EXPRESSWAY": "EXPY", "FREEWAY": "FWY", "HIGHWAY": "HWY", "LANE": "LN", "PARKWAY": "PKWY",
    "PLACE": "PL", "PLAZA": "PLZ", "ROAD": "RD", "SQUARE": "SQ", "STREET": "ST", "STR": "ST",
    "TERRACE": "TER", "TRAIL": "TRL", "WAY": "WAY", "CENTER": "CTR", "PIKE": "PIKE", "ROUTE": "RTE",
}  # fmt: skip
_DIRECTIONS = {
    "NORTH": "N", "SOUTH": "S", "EAST": "E", "WEST": "W",
    "NORTHEAST": "NE", "NORTHWEST": "NW", "SOUTHEAST": "SE", "SOUTHWEST": "SW",
}  # fmt: skip
_UNITS = {"SUITE": "STE", "APARTMENT": "APT", "BUILDING": "BLDG", "FLOOR": "FL", "ROOM": "RM", "UNIT": "UNIT"}
_STREET_PARTS = (
    "AddressNumber",
    "StreetNamePreDirectional",
    "StreetNamePreType",
    "StreetName",
    "StreetNamePostType",
    "StreetNamePostDirectional",
)
_ZIP_RE = re.compile(r"\b(\d{5})(?:-?\d{4})?\b")


def _clean(token: str) -> str:
    return re.sub(r"[.,#]", "", token).strip().upper()


def _abbreviate(label: str, value: str) -> str:
    words = [_clean(w) for w in value.split() if _clean(w)]
    if label in ("StreetNamePostType", "StreetNamePreType"):
        words = [_SUFFIXES.get(w, w) for w in words]
    elif label.endswith("Directional"):
        words = [_DIRECTIONS.get(w, w) for w in words]
    elif label == "OccupancyType":
        words = [_UNITS.get(w, w) for w in words]
    return " ".join(words)


def zip5(value: str | None) -> str | None:
    """The 5-digit ZIP of ``95816``, ``95816-1234`` or ``958161234`` (leading zeros restored)."""
    if not value:
        return None
    text = str(value).strip()
    if text.isdigit() and len(text) in (3, 4):
        text = text.zfill(5)  # spreadsheets eat leading zeros: 2114 -> 02114
    match = _ZIP_RE.search(text) or (re.match(r"^(\d{5})\d{4}$", text) if text.isdigit() else None)
    return match.group(1) if match else None


@functools.lru_cache(maxsize=65536)
def standardize_address(
    address: str | None, city: str | None = None, state: str | None = None, zip_code: str | None = None
) -> dict[str, Any]:
    """``{address_standardized, city, state, zip5}`` of a US address; unparsed parts pass through upper-cased."""
    import usaddress

    out: dict[str, Any] = {
        "address_standardized": None,
        "city": city.strip().upper() if city else None,
        "state": state.strip().upper() if state else None,
        "zip5": zip5(zip_code),
    }
    if not address or not address.strip():
        return out
    try:
        tagged, _kind = usaddress.tag(address)
        parts = dict(tagged)
    except usaddress.RepeatedLabelError as exc:
        parts = {}
        for value, label in exc.parsed_string:
            parts[label] = f"{parts[label]} {value}" if label in parts else value
    street = " ".join(_abbreviate(k, parts[k]) for k in _STREET_PARTS if parts.get(k))
    unit = " ".join(_abbreviate(k, parts[k]) for k in ("OccupancyType", "OccupancyIdentifier") if parts.get(k))
    po_box = " ".join(
        _clean(parts[k]) for k in ("USPSBoxType", "USPSBoxID") if parts.get(k)
    )
    line = " ".join(p for p in (street or po_box, unit) if p) or _clean(address)
    out["address_standardized"] = re.sub(r"\s+", " ", line)
    out["city"] = out["city"] or (_clean(parts["PlaceName"]) if parts.get("PlaceName") else None)
    out["state"] = out["state"] or (_clean(parts["StateName"]) if parts.get("StateName") else None)
    out["zip5"] = out["zip5"] or zip5(parts.get("ZipCode"))
    return out


@functools.lru_cache(maxsize=1)
def _zip_table() -> dict[str, tuple[float, float, str | None, str | None]]:
    import zipcodes

    table = {}
    for row in zipcodes.list_all():
        try:
            table[row["zip_code"]] = (float(row["lat"]), float(row["long"]), row.get("county"), row.get("state"))
        except (TypeError, ValueError, KeyError):
            continue
    return table


def zip_centroid(zip_code: str | None) -> tuple[float, float, str | None] | None:
    """``(lat, lon, county)`` of a ZIP's centroid from the shipped table, or None when unknown."""
    z = zip5(zip_code)
    found = _zip_table().get(z) if z else None
    return (found[0], found[1], found[2]) if found else None


def enrich(record: dict[str, Any]) -> dict[str, Any]:
    """Add ``address_standardized``, ``zip5``, ``county``, ``latitude``, ``longitude``, ``geo_source``."""
    std = standardize_address(record.get("address"), record.get("city"), record.get("state"), record.get("zip"))
    centroid = zip_centroid(std["zip5"])
    record.update(
        address_standardized=std["address_standardized"],
        zip5=std["zip5"],
        county=centroid[2] if centroid else None,
        latitude=centroid[0] if centroid else None,
        longitude=centroid[1] if centroid else None,
        geo_source="zip_centroid" if centroid else None,
    )
    return record
