"""``price-pipeline`` command line.

Subcommands are registered in :data:`COMMANDS` (name -> (setup, run)), so other commands can be
added next to ``parse`` without touching :func:`main`.

``price-pipeline parse FILE... --out DIR`` parses each file to ``DIR/<name>.parquet`` and prints
one JSON line per file (file, format, version, encoding, rows_parsed, rows_quarantined, ok,
findings). Exit status is 0 even when files have findings; non-zero only on tool failures
(e.g. unwritable output directory, missing input file).

``price-pipeline quarantine [--hospital K]... [--limit N] [--summary]`` lists the current
quarantine of the configured lake (files that failed to download or parse, rows the parser
quarantined), one JSON line per entry with its reason (see docs/quality.md).

``price-pipeline validate FILE... [--max-errors N] [--rules major|declared|in-force] [--as-of DATE]
[--version V]`` checks each file against the CMS data dictionary rules (see
:mod:`price_pipeline.lib.validate`) and prints one JSON report per file
(file, format, version, valid, error/alert counts by rule, first N findings). Exit status 0
even for non-conformant files; 2 when a file cannot be read.

``price-pipeline export [--table NAME]... [--hospital K]... [--state ST]... [--code C]...
[--payer-class P]... [--format csv|parquet|both] [--out DIR]`` writes filtered extracts of the
newest marts published to the lake (``marts/``, see docs/analysts.md), one JSON line per table.
Exit status 2 when nothing is published yet or a table name is unknown.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections.abc import Callable


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


def _setup_quarantine(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hospital", action="append", default=None, metavar="KEY",
                   help="only this hospital (repeatable; default: every hospital in the lake)")
    p.add_argument("--limit", type=int, default=None, help="print at most N entries")
    p.add_argument("--summary", action="store_true", help="print counts only, one JSON object")


def _run_quarantine(args: argparse.Namespace) -> int:
    """Current quarantine, read live from the lake of the configured environment."""
    from price_pipeline.lib.lake.storage import open_lake
    from price_pipeline.lib.quality import quarantine
    from price_pipeline.settings import Settings

    settings = Settings.from_env()
    lake = open_lake(settings.lake_url, endpoint_url=settings.s3_endpoint_url)
    table = quarantine.build_quarantine(lake, hospital_keys=args.hospital)
    if args.summary:
        print(json.dumps(quarantine.summarize(table)), flush=True)
        return 0
    for line in quarantine.to_json_lines(table, limit=args.limit):
        print(line, flush=True)
    return 0


def _setup_export(p: argparse.ArgumentParser) -> None:
    p.add_argument("--table", action="append", default=None, metavar="NAME",
                   help="published table to export (repeatable; default: every published table)")
    p.add_argument("--hospital", action="append", default=[], metavar="KEY", help="only this hospital (repeatable)")
    p.add_argument("--state", action="append", default=[], metavar="ST", help="only hospitals in this state (repeatable)")
    p.add_argument("--code", action="append", default=[], help="only this billing code (repeatable)")
    p.add_argument("--payer-class", action="append", default=[], help="only this payer class (repeatable)")
    p.add_argument("--format", choices=("csv", "parquet", "both"), default="csv", help="file format (default csv)")
    p.add_argument("--out", default="exports", help="local output folder (default ./exports)")


def _run_export(args: argparse.Namespace) -> int:
    """Filtered extracts of the newest published marts of the configured lake (docs/analysts.md)."""
    from pathlib import Path

    from price_pipeline.lib.analytics.exports import ExportFilters, UnsafeExportError
    from price_pipeline.lib.analytics.publish import NothingPublishedError, export_published
    from price_pipeline.lib.lake.storage import open_lake
    from price_pipeline.settings import Settings

    settings = Settings.from_env()
    lake = open_lake(settings.lake_url, endpoint_url=settings.s3_endpoint_url)
    filters = ExportFilters.of(args.hospital, args.state, args.code, args.payer_class)
    formats = ("csv", "parquet") if args.format == "both" else (args.format,)
    try:
        results = export_published(lake, Path(args.out), filters, formats=formats, names=args.table)
    except (NothingPublishedError, KeyError, UnsafeExportError) as e:
        print(json.dumps({"error": str(e).strip('"')}), file=sys.stderr, flush=True)
        return 2
    for name, result in results.items():
        print(json.dumps({"table": name, "out": args.out, **result}), flush=True)
    return 0


COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int], str]] = {
    "parse": (_setup_parse, _run_parse, "parse MRF files to Parquet, one JSON summary line per file"),
    "validate": (_setup_validate, _run_validate,
                 "CMS conformance check (official-validator rules), one JSON report line per file"),
    "quarantine": (_setup_quarantine, _run_quarantine,
                   "list quarantined files and rows (with reason) of the lake, one JSON line per entry"),
    "export": (_setup_export, _run_export,
               "filtered CSV/Parquet extracts of the published marts (hospital, state, code, payer class)"),
}

from price_pipeline.ops_cli import OPS_COMMANDS  # noqa: E402 - job control: runs, backfills, failed hospitals

COMMANDS.update(OPS_COMMANDS)


def build_parser() -> argparse.ArgumentParser:
    """Argument parser with one sub-parser per entry of :data:`COMMANDS`."""
    parser = argparse.ArgumentParser(prog="price-pipeline", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (setup, run, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text)
        setup(p)
        p.set_defaults(_run=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Console entry point (``price-pipeline``); returns the exit status."""
    args = build_parser().parse_args(argv)
    return args._run(args)


if __name__ == "__main__":
    sys.exit(main())
