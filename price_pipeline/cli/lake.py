"""``price-pipeline quarantine`` and ``export``: commands on the configured lake.

``price-pipeline quarantine [--hospital K]... [--limit N] [--summary]`` lists the current
quarantine of the configured lake (files that failed to download or parse, rows the parser
quarantined), one JSON line per entry with its reason (see docs/quality.md).

``price-pipeline export [--table NAME]... [--hospital K]... [--state ST]... [--code C]...
[--payer-class P]... [--format csv|parquet|both] [--out DIR]`` writes filtered extracts of the
newest marts published to the lake (``marts/``, see docs/analysts.md), one JSON line per table.
Exit status 2 when nothing is published yet or a table name is unknown.
"""

from __future__ import annotations

import argparse
import json

from price_pipeline.cli.registry import CliError, command


def _configured_lake():
    """The lake of the configured environment (PRICE_PIPELINE_LAKE_URL, _S3_ENDPOINT_URL)."""
    from price_pipeline.lib.lake.storage import open_lake
    from price_pipeline.settings import Settings

    settings = Settings.from_env()
    return open_lake(settings.lake_url, endpoint_url=settings.s3_endpoint_url)


def _setup_quarantine(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hospital", action="append", default=None, metavar="KEY",
                   help="only this hospital (repeatable; default: every hospital in the lake)")
    p.add_argument("--limit", type=int, default=None, help="print at most N entries")
    p.add_argument("--summary", action="store_true", help="print counts only, one JSON object")


@command("quarantine", help="list quarantined files and rows (with reason) of the lake, one JSON line per entry",
         setup=_setup_quarantine)
def _run_quarantine(args: argparse.Namespace) -> int:
    """Current quarantine, read live from the lake of the configured environment."""
    from price_pipeline.lib.quality import quarantine

    table = quarantine.build_quarantine(_configured_lake(), hospital_keys=args.hospital)
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


@command("export", help="filtered CSV/Parquet extracts of the published marts (hospital, state, code, payer class)",
         setup=_setup_export)
def _run_export(args: argparse.Namespace) -> int:
    """Filtered extracts of the newest published marts of the configured lake (docs/analysts.md)."""
    from pathlib import Path

    from price_pipeline.lib.analytics.exports import ExportFilters, UnsafeExportError
    from price_pipeline.lib.analytics.publish import NothingPublishedError, export_published

    lake = _configured_lake()
    filters = ExportFilters.of(args.hospital, args.state, args.code, args.payer_class)
    formats = ("csv", "parquet") if args.format == "both" else (args.format,)
    try:
        results = export_published(lake, Path(args.out), filters, formats=formats, names=args.table)
    except (NothingPublishedError, KeyError, UnsafeExportError) as e:
        raise CliError(str(e).strip('"'), status=2) from e
    for name, result in results.items():
        print(json.dumps({"table": name, "out": args.out, **result}), flush=True)
    return 0
