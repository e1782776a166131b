"""``price-pipeline parse`` and ``validate``: commands on local MRF files.

``price-pipeline parse FILE... --out DIR`` parses each file to ``DIR/<name>.parquet`` and prints
one JSON line per file (file, format, version, encoding, rows_parsed, rows_quarantined, ok,
findings). Exit status is 0 even when files have findings; non-zero only on tool failures
(e.g. unwritable output directory, missing input file).

``price-pipeline validate FILE... [--max-errors N] [--rules major|declared|in-force] [--as-of DATE]
[--version V]`` checks each file against the CMS data dictionary rules (see
:mod:`price_pipeline.lib.validate`) and prints one JSON report per file
(file, format, version, valid, error/alert counts by rule, first N findings). Exit status 0
even for non-conformant files; 2 when a file cannot be read.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os

from price_pipeline.cli.registry import command


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def _setup_parse(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", help="MRF files (csv, json, zip, gz, xlsx; detected from content)")
    p.add_argument("--out", required=True, help="output directory for <name>.parquet files")
    p.add_argument("--max-findings", type=int, default=1000, help="findings kept per file (default 1000)")
    p.add_argument("--no-sha", action="store_true", help="do not hash input files")


def _archive_limits() -> dict:
    """The configured zip/gzip caps (PRICE_PIPELINE_MAX_DOWNLOAD_BYTES / _MAX_DECOMPRESSION_RATIO),
    as the ingest passes them to the parser and the validator."""
    from price_pipeline.settings import Settings

    return Settings.from_env().archive_limits()


@command("parse", help="parse MRF files to Parquet, one JSON summary line per file", setup=_setup_parse)
def _run_parse(args: argparse.Namespace) -> int:
    # Imported here: the parser pulls in pyarrow (and through it pandas); other commands need neither.
    from price_pipeline.lib.parse.mrf import parse_to_parquet

    limits = _archive_limits()
    os.makedirs(args.out, exist_ok=True)
    status = 0
    for path in args.files:
        name = os.path.basename(path)
        out = os.path.join(args.out, name + ".parquet")
        try:
            sha = None if args.no_sha else _sha256(path)
            s = parse_to_parquet(path, out, file_sha256=sha, max_findings=args.max_findings, **limits)
        except OSError as e:  # tool failure: missing input, unwritable output
            print(json.dumps({"file": path, "error": str(e)}), flush=True)
            status = 2
            continue
        line = {
            "file": path, "out": out, "ok": s.ok, "format": s.format, "version": s.version,
            "encoding": s.encoding, "compression": s.compression, "rows_parsed": s.rows_parsed,
            "rows_quarantined": s.rows_quarantined, "findings_total": s.findings_total,
            "findings": [f.as_dict() for f in s.findings],
        }
        print(json.dumps(line, default=str), flush=True)
    return status


def _setup_validate(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", help="MRF files (csv, json, zip, gz; detected from content)")
    p.add_argument("--max-errors", type=int, default=1000,
                   help="findings kept per file (counts are always complete; default 1000)")
    p.add_argument("--version", dest="rules_version", default=None,
                   help="force a rule set (2.0.0, 2.1.0, 2.2.0, 3.0.0; or as the official CLI spells it: v2.2, 3)")
    p.add_argument("--rules", choices=("major", "declared", "in-force"), default="major",
                   help="which rules when --version is not given: major (default) = the latest rules of the declared "
                        "major version, as the official CLI picks them (2.x -> 2.2.0, 3.x/missing -> 3.0.0); "
                        "declared = the declared major.minor; in-force = what CMS enforces on --as-of")
    p.add_argument("--as-of", type=_iso_date, default=None, metavar="YYYY-MM-DD",
                   help="date for --rules in-force (default: today)")


def _iso_date(value: str):
    import datetime as dt

    try:
        return dt.date.fromisoformat(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"not a YYYY-MM-DD date: {value!r}") from e


@command("validate", help="CMS conformance check (official-validator rules), one JSON report line per file",
         setup=_setup_validate)
def _run_validate(args: argparse.Namespace) -> int:
    from price_pipeline.lib.validate import validate_file

    limits = _archive_limits()
    status = 0
    for path in args.files:
        try:
            r = validate_file(path, max_findings=args.max_errors, version=args.rules_version, rules=args.rules,
                              as_of=args.as_of, **limits)
        except OSError as e:  # tool failure: missing or unreadable input
            print(json.dumps({"file": path, "error": str(e)}), flush=True)
            status = 2
            continue
        print(json.dumps(r.as_dict(), default=str), flush=True)
    return status
