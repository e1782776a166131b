"""CMS conformance validation of hospital price-transparency MRFs (CSV tall, CSV wide, JSON).

:func:`validate_file` streams one file (plain, zip or gzip; detected from content with the
parser's ``sniff`` module) and returns a :class:`ConformanceReport`: valid (no errors), error
and alert counts by rule, and the first ``max_findings`` findings with row/column (CSV) or JSON
path. The rule set is chosen as the official command line does for the declared major version
(2.x -> 2.2.0, 3.x, missing or unknown -> 3.0.0), or by the ``declared`` minor version, or as in
force on a date (``rules=``, see :func:`validate_file`), unless ``version=`` forces one. The
reference implementation is the official validator ``@cmsgov/hpt-validator`` 2.4.0;
``benchmarks/validator_parity.py`` compares the two and README.md lists the deliberate differences.

Rule ids (stable) and the official validator's error class / message family:

===============================  ===============================================  ========
rule                             official class / message                         severity
===============================  ===============================================  ========
invalid_version                  InvalidVersionError                              error
unreadable_file                  (none: official needs a plain CSV/JSON stream)   error
invalid_json                     InvalidJsonError ("JSON parsing error: ...")     error
decompression_limit              (none: zip/gzip over the byte or ratio cap)      error
truncated_archive                (none: the zip/gzip stream ends early)           error
bad_crc                          (none: the archive's CRC-32 check failed)        error
bad_archive                      (none: corrupt archive data or headers)          error
encrypted_archive                (none: encrypted zip member)                     error
unsupported_compression          (none: e.g. a deflate64 zip member)              error
json_too_deep                    (none: JSON nested over 64 deep)                 error
number_too_long                  (none: a JSON number of over 256 digits)         error
token_too_long                   (none: a JSON string over 32 MiB)                error
record_too_large                 (none: a CSV record over 16 MiB)                 error
unterminated_field               (none: the CSV ends inside a quoted field)       error
min_rows                         MinRowsError                                     error
header_blank_row                 HeaderBlankError                                 error
header_column_missing            HeaderColumnMissingError                         error
header_column_duplicate          DuplicateHeaderColumnError                       error
invalid_state_code               InvalidStateCodeError                            error
header_value_required            RequiredValueError (row 2)                       error
invalid_date                     InvalidDateError                                 error
header_allowed_value             AllowedValuesError (row 2, attestation)          error
column_missing                   ColumnMissingError                               error
column_duplicate                 DuplicateColumnError                             error
placeholder_in_header            PlaceholderError                                 error
ambiguous_format                 AmbiguousFormatError                             error
rows_not_evaluated               ProblemsInHeaderError                            error
required_value                   RequiredValueError (description, setting)        error
allowed_value                    AllowedValuesError                               error
invalid_number                   InvalidPositiveNumberError                       error
invalid_count                    InvalidCountNumberError                          error
cond_payer_plan_methodology      RequiredValueError (payer-specific suffix)  #1   error
cond_charge_with_payer_plan      ChargeWithPayerPlanError                    #1   error
cond_code_pair_missing           CodePairMissingError                        #2   error
cond_code_type_pair              RequiredValueError (code / code type)       #3   error
cond_other_methodology_notes     OtherMethodologyNotesError                  #4   error
cond_item_requires_charge        ItemRequiresChargeError                     #5   error
cond_dollar_needs_min_max        DollarNeedsMinMaxError                      #6   error
cond_count_required              PercentageAlgorithmCountError               #7   error
cond_allowed_amounts_required    PercentageAlgorithm{Median,10th,90th}Error  #8   error
cond_count_zero_notes            AllowedCountZeroNotesError                  #9   error
cond_ndc_drug_info               DrugInformationRequiredError                #10  error
cond_modifier_info               ModifierMissingInfoError                    #11  error
cond_drug_unit_type_pair         RequiredValueError (drug suffix)            #12  error
cond_estimated_amount_required   PercentageAlgorithmEstimateError (v2.2)          error
json_required / json_type /      ajv keyword errors of the CMS JSON schema        error
json_enum / json_const /         ("must have required property", "must be
json_min_length / json_min_items  number", "must be equal to one of the allowed
json_exclusive_minimum /         values", ..., "must match a schema in anyOf",
json_pattern / json_format /     'must match "then" schema')
json_any_of / json_if_then /
json_minimum / json_schema_other
nine_nines                       CsvNineNinesAlert / "Nine 9s used for ..."       alert
estimated_amount_v3              EstimatedAmountAlert / JSON $message             alert
false_attestation                Csv/JsonFalseAttestationAlert, ...Affirmation... alert
version_mismatch                 Csv/JsonVersionMismatchAlert                     alert
trailing_data                    (none: official stops at the document's end)     alert
cr_line_endings                  (none: official splits records on LF only)       alert
no_data_rows                     (none: official counts blank lines as rows)      alert
===============================  ===============================================  ========

(``#n``: conditional requirement n of the v3.0 CSV data dictionary.) Errors make a file
non-conformant, alerts do not.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import time

from price_pipeline.lib.parse.mrf.limits import InputLimit, guarded
from price_pipeline.lib.parse.mrf.sniff import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_RATIO,
    SAMPLE_BYTES,
    TranscodingReader,
    archive_error,
    detect_encoding,
    detect_kind,
    open_source,
)

from .csv_body import UnreadableBody
from .csv_header import UnterminatedField
from .report import ConformanceReport, ReportCollector
from .rules import (
    DEFAULT_RULE_SELECTION,
    RULE_SELECTIONS,
    RULES,
    SUPPORTED_VERSIONS,
    cli_version_choice,
    in_force_rules,
    select_rules,
)

__all__ = ["ConformanceReport", "DEFAULT_RULE_SELECTION", "RULES", "RULE_SELECTIONS", "validate_file"]


def _utf8_opener(src, encoding: str, bom: int, json_guard: bool = False):
    """``open_stream()`` of the UTF-8 payload; ``json_guard``: every byte through the parser's
    JSON limits (:mod:`price_pipeline.lib.parse.mrf.limits`) before a JSON reader sees it."""
    def open_stream():
        f = src.open()
        if bom:
            f.read(bom)
        if encoding not in ("utf-8", "utf-8-sig"):
            f = io.BufferedReader(TranscodingReader(f, encoding.replace("-sig", "")), 1 << 22)
        return guarded(f) if json_guard else f

    return open_stream


def validate_file(path: str | os.PathLike, *, max_findings: int = 1000, version: str | None = None,
                  rules: str = DEFAULT_RULE_SELECTION, as_of: dt.date | None = None,
                  max_decompressed_bytes: int = DEFAULT_MAX_BYTES, max_ratio: float = DEFAULT_MAX_RATIO
                  ) -> ConformanceReport:
    """Validate one MRF (CSV tall/wide or JSON; plain, zip or gzip) against the CMS rules.

    Which rule set (``rules``, see docs/quality.md): ``major`` (default) takes the latest rules of
    the declared major version, as the official command line does for a bare major (2.x -> 2.2.0,
    3.x, missing or unknown -> 3.0.0); ``declared`` the declared major.minor (2.0.0, 2.1.0, 2.2.0,
    3.0.0); ``in-force`` the rules CMS enforces on ``as_of`` (default today) whatever the file
    declares. ``version`` forces a rule set (``3.0.0``, or as the official command line spells it:
    ``v2.2``, ``3``). ``max_decompressed_bytes`` / ``max_ratio``: the parser's caps on a zip or
    gzip payload. Bad content never raises (it becomes findings: a damaged archive, a limit of
    :mod:`price_pipeline.lib.parse.mrf.limits`); a missing/unreadable path raises OSError.
    """
    t0 = time.perf_counter()
    file = os.fspath(path)
    rc = ReportCollector(max_findings)
    if rules not in RULE_SELECTIONS:
        raise ValueError(f"unknown rule selection {rules!r}; one of {', '.join(RULE_SELECTIONS)}")
    forced = None
    if version is not None:
        forced = version if version in SUPPORTED_VERSIONS else cli_version_choice(version)
        selection = "forced"
    elif rules == "in-force":
        forced = in_force_rules(as_of)
        selection = f"in-force@{as_of or dt.datetime.now(dt.UTC).date()}"
    else:
        selection = rules
    info = {"format": None, "version": None, "rules_version": forced, "rows_checked": 0}
    src = open_source(file, max_bytes=max_decompressed_bytes, max_ratio=max_ratio)
    if version is not None and forced is None:
        rc.add("invalid_version", f"Invalid version supplied. Allowed versions are: {', '.join(SUPPORTED_VERSIONS)}")
        return rc.report(file=file, seconds=time.perf_counter() - t0, compression=src.compression,
                         rules_selection=selection, **info)
    choose = forced if forced is not None else (lambda declared: select_rules(declared, rules))
    try:
        if src.container == "broken" and any(r in RULES for r, sev, _m in src.notes if sev == "error"):
            for r, sev, m in src.notes:  # e.g. encrypted_archive, unsupported_compression
                if sev == "error":
                    rc.add(r if r in RULES else "unreadable_file", m)
        elif src.container in ("broken", "xlsx"):
            msgs = [m for _r, _s, m in src.notes] or ["an Excel workbook is not a CMS CSV/JSON file"]
            rc.add("unreadable_file", "; ".join(msgs))
        else:
            with src.open() as f:
                sample = f.read(SAMPLE_BYTES)
            encoding, bom = detect_encoding(sample, complete=len(sample) < SAMPLE_BYTES)
            kind = detect_kind(sample[bom: bom + 65536].decode(encoding.replace("-sig", ""), "replace"))
            opener = _utf8_opener(src, encoding, bom, json_guard=kind == "json")
            if kind == "json":
                from .json_check import validate_json

                plain = src.path if src.compression is None and encoding == "utf-8" and not bom else None
                info.update(validate_json(opener, rc, choose, plain_path=plain))
            elif kind == "csv":
                from .csv_check import validate_csv

                plain = src.path if src.compression is None and encoding in ("utf-8", "utf-8-sig") else None
                info.update(validate_csv(opener, rc, choose, plain_path=plain, bom=bom))
            else:
                rc.add("unreadable_file", f"content is {kind}, not CSV or JSON")
    except InputLimit as e:
        rc.add("invalid_json" if e.rule == "json_syntax_error" else e.rule,
               f"JSON parsing error: {e.message}" if e.rule == "json_syntax_error" else e.message)
    except (UnterminatedField, UnreadableBody) as e:
        rc.add("unterminated_field" if isinstance(e, UnterminatedField) else "unreadable_file", str(e))
    except Exception as e:
        what = archive_error(e)  # a damaged archive, wherever its bytes were read
        if what is None:
            raise
        rc.add(*what)
    return rc.report(file=file, seconds=round(time.perf_counter() - t0, 4), compression=src.compression,
                     rules_selection=selection, **info)
