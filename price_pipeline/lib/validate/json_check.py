"""JSON conformance: the CMS JSON schema, item by item, streamed with ijson.

Like the official validator, the top-level members (metadata) are validated against the
schema without ``standard_charge_information`` (or the full schema when there are no items),
and every ``standard_charge_information`` item separately against the item definition. The
schemas are compiled once per version.

Speed: v3.0.0 payloads of ``CHUNKED_MIN_BYTES`` or more go through :mod:`.json_fast` (the
parser's parallel Arrow chunks, whole-column checks; chunks it cannot pass come back here, item by
item). Otherwise each item first goes through a hand-written, *conservative* check of the v3.0.0
item rules (plain dict/type tests, no allocation); only items that it cannot pass go to the exact
``jsonschema`` Draft 7 validator, which produces ajv-style findings. For v2.x the fast filter
is ``fastjsonschema`` when installed. So findings always come from the exact validator.
"""

from __future__ import annotations

import io
import json
import os
import re
from functools import lru_cache

import ijson
import jsonschema
import numpy as np

from price_pipeline.lib.parse.mrf.json_top import (
    TailTracker,
    collect_top,
    find_tail_members,
    parse_tail_members,
)
from price_pipeline.lib.parse.mrf.streams import InnerReader

from .report import ReportCollector
from .rules import (
    BILLING_CODE_TYPES_V3,
    DRUG_UNITS,
    METHODOLOGIES,
    SETTINGS,
    as_chooser,
    vkey,
)

SCHEMA_DIR = os.path.join(os.path.dirname(__file__), "schemas")
# Top-level members the official validator reads (its JSONParser paths); others are ignored.
CAPTURED = ("hospital_name", "last_updated_on", "license_information", "version", "hospital_address",
            "hospital_location", "location_name", "affirmation", "attestation", "modifier_information", "type_2_npi")
_DATE = re.compile(r"^(\d\d\d\d)-(\d\d)-(\d\d)$")
_COUNT = re.compile(r"^(0|1 through 10|1[1-9]|[2-9]\d+|[1-9]\d{2,})$", re.ASCII)
_EST_MSG = ("The 'estimated amount' is no longer a required data element as of January 1, 2026. It has been "
            "replaced by the 10th percentile, median, 90th percentile, and count of allowed amounts.")
# Chunked parallel path for v3.0.0 items (json_fast): on for payloads of at least this size.
CHUNKED = True
CHUNKED_MIN_BYTES = 8 * 1024**2
CHUNK_WORKERS = 2
CHUNK_BYTES = 4 * 1024**2  # smaller than the parser's 16 MB: less RSS and fewer page faults, same speed
# Plain UTF-8 files: cut by file offset, chunks read by the workers (json_fast.read_plain_file).
PLAIN_READER = True
_KW_RULE = {
    "required": "json_required", "type": "json_type", "enum": "json_enum", "const": "json_const",
    "minLength": "json_min_length", "minItems": "json_min_items", "exclusiveMinimum": "json_exclusive_minimum",
    "minimum": "json_minimum", "pattern": "json_pattern", "format": "json_format", "anyOf": "json_any_of",
}


def _is_date(value) -> bool:
    """ajv-formats "date" (full): YYYY-MM-DD and a real calendar day."""
    if not isinstance(value, str):
        return True
    m = _DATE.match(value)
    if not m:
        return False
    y, mo, d = int(m.group(1)), int(m.group(2)), int(m.group(3))
    if not 1 <= mo <= 12 or d < 1:
        return False
    leap = y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)
    return d <= (29 if mo == 2 and leap else (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)[mo - 1])


_FORMATS = jsonschema.FormatChecker(formats=())
_FORMATS.checks("date")(_is_date)


@lru_cache(maxsize=8)
def schemas(version: str):
    """(item validator, metadata validator, full validator, fast item filter) for a version."""
    with open(os.path.join(SCHEMA_DIR, f"v{version}.json"), encoding="utf-8") as f:
        full = json.load(f)
    item = {"$schema": full["$schema"], "definitions": full["definitions"],
            **full["definitions"]["standard_charge_information"]}
    meta = dict(full)
    meta["properties"] = {k: v for k, v in full["properties"].items() if k != "standard_charge_information"}
    meta["required"] = [r for r in full["required"] if r != "standard_charge_information"]
    mk = jsonschema.Draft7Validator
    fast = fast_ok_v3 if version == "3.0.0" else _fastjsonschema_filter(item)
    return mk(item, format_checker=_FORMATS), mk(meta, format_checker=_FORMATS), mk(full, format_checker=_FORMATS), fast


def _fastjsonschema_filter(schema):
    try:
        import fastjsonschema
    except ImportError:  # pragma: no cover - optional speed-up
        return None
    try:
        fn = fastjsonschema.compile(schema, formats={"date": _is_date})
    except Exception:  # pragma: no cover
        return None

    def ok(item) -> bool:
        try:
            fn(item)
            return True
        except Exception:
            return False

    return ok


# --- fast conservative v3.0.0 item check ---------------------------------------------------------
_CODES3 = frozenset(BILLING_CODE_TYPES_V3)
_DRUG = frozenset(DRUG_UNITS)
_METH = frozenset(METHODOLOGIES)
_SET = frozenset(SETTINGS)
_NUM = (int, float)


def _pos(v) -> bool:
    t = type(v)
    return (t is float or t is int) and v > 0


def _str1(v) -> bool:
    return type(v) is str and len(v) > 0


def fast_ok_v3(item) -> bool:
    """True only when ``item`` is surely valid against the v3.0.0 item schema."""
    if type(item) is not dict or not _str1(item.get("description")):
        return False
    codes = item.get("code_information")
    if type(codes) is not list or not codes:
        return False
    ndc = False
    for c in codes:
        if type(c) is not dict or not _str1(c.get("code")) or c.get("type") not in _CODES3:
            return False
        if c["type"] == "NDC":
            ndc = True
    if "drug_information" in item:
        di = item["drug_information"]
        if type(di) is not dict or not _pos(di.get("unit")) or di.get("type") not in _DRUG:
            return False
    elif ndc:
        return False
    scs = item.get("standard_charges")
    if type(scs) is not list or not scs:
        return False
    for sc in scs:
        if type(sc) is not dict or sc.get("setting") not in _SET:
            return False
        for k in ("minimum", "maximum", "gross_charge", "discounted_cash"):
            if k in sc and not _pos(sc[k]):
                return False
        if "modifier_code" in sc:
            mc = sc["modifier_code"]
            if type(mc) is not list or not mc or not all(_str1(x) for x in mc):
                return False
        if "additional_generic_notes" in sc and not _str1(sc["additional_generic_notes"]):
            return False
        if "payers_information" in sc:
            pis = sc["payers_information"]
            if type(pis) is not list or not pis:
                return False
            dollar = False
            for p in pis:
                if type(p) is not dict or not _str1(p.get("payer_name")) or not _str1(p.get("plan_name")):
                    return False
                meth = p.get("methodology")
                if meth not in _METH:
                    return False
                has_notes = "additional_payer_notes" in p
                if has_notes and not _str1(p["additional_payer_notes"]):
                    return False
                d = "standard_charge_dollar" in p
                pct = "standard_charge_percentage" in p
                alg = "standard_charge_algorithm" in p
                if not (d or pct or alg):
                    return False
                if (d and not _pos(p["standard_charge_dollar"])) or (pct and not _pos(p["standard_charge_percentage"])):
                    return False
                if alg and not _str1(p["standard_charge_algorithm"]):
                    return False
                for k in ("median_amount", "10th_percentile", "90th_percentile"):
                    if k in p and not _pos(p[k]):
                        return False
                if "count" in p:
                    cnt = p["count"]
                    if type(cnt) is not str or not _COUNT.match(cnt):
                        return False
                else:
                    cnt = None
                if meth == "other" and not has_notes:
                    return False
                if pct or alg:
                    if cnt is None:
                        return False
                    if cnt != "0" and not ("median_amount" in p and "10th_percentile" in p and "90th_percentile" in p):
                        return False
                if cnt == "0" and not has_notes:
                    return False
                dollar = dollar or d
            if dollar and not ("minimum" in sc and "maximum" in sc):
                return False
        elif "gross_charge" not in sc and "discounted_cash" not in sc:
            return False
    return True


# --- exact errors, ajv style --------------------------------------------------------------------
def _ajv_message(e) -> str:
    kw = e.validator
    if kw == "required":
        m = re.search(r"'(.+)' is a required property", e.message)
        return f"must have required property '{m.group(1) if m else e.message}'"
    if kw == "type":
        return f"must be {e.validator_value}"
    if kw == "enum":
        return "must be equal to one of the allowed values"
    if kw == "const":
        return "must be equal to constant"
    if kw == "minLength":
        return f"must NOT have fewer than {e.validator_value} characters"
    if kw == "minItems":
        return f"must NOT have fewer than {e.validator_value} items"
    if kw == "exclusiveMinimum":
        return f"must be > {e.validator_value}"
    if kw == "minimum":
        return f"must be >= {e.validator_value}"
    if kw == "pattern":
        return f'must match pattern "{e.validator_value}"'
    if kw == "format":
        return f'must match format "{e.validator_value}"'
    if kw == "anyOf":
        return "must match a schema in anyOf"
    return e.message


def _jpath(prefix: str, path) -> str:
    return prefix + "".join(f"/{p}" for p in path)


def schema_errors(validator, instance, prefix: str = "") -> list[tuple[str, str, str]]:
    """(rule, message, path) for every error, flattened like ajv ``allErrors``: the branch errors
    of a failed ``anyOf`` are reported too, and each failed ``then`` adds an ``if`` error."""
    out: list[tuple[str, str, str]] = []
    thens: dict = {}

    def walk(e, base_path):
        path = _jpath(prefix, list(base_path))
        rel = list(e.relative_schema_path)
        if "then" in rel:
            k = rel.index("then")
            key = (tuple(e.absolute_path)[: len(e.absolute_path) - 0], tuple(e.absolute_schema_path)[:k])
            thens.setdefault(key, path if e.validator != "required" else path)
        if e.validator == "anyOf":
            for sub in e.context or ():
                walk(sub, sub.absolute_path)
        out.append((_KW_RULE.get(e.validator, "json_schema_other"), _ajv_message(e), path))

    for e in validator.iter_errors(instance):
        walk(e, e.absolute_path)
    for (_k, _s), path in thens.items():
        out.append(("json_if_then", 'must match "then" schema', path))
    return out


def _payer_alerts(item, index: int, v3: bool, rc: ReportCollector) -> None:
    scs = item.get("standard_charges") if type(item) is dict else None
    if type(scs) is not list:
        return
    for j, sc in enumerate(scs):
        pis = sc.get("payers_information") if type(sc) is dict else None
        if type(pis) is not list:
            continue
        for k, p in enumerate(pis):
            if type(p) is not dict:
                continue
            path = f"/standard_charge_information/{index}/standard_charges/{j}/payers_information/{k}"
            if v3:
                if "estimated_amount" in p:
                    rc.add("estimated_amount_v3", _EST_MSG, path=path)
                if p.get("count") == "999999999":
                    rc.add("nine_nines", "Nine 9s used for count.", path=path + "/count")
                for k2, fr in (("median_amount", "median amount"), ("10th_percentile", "10th percentile"),
                               ("90th_percentile", "90th percentile")):
                    x = p.get(k2)
                    if type(x) in _NUM and x == 999999999:
                        rc.add("nine_nines", f"Nine 9s used for {fr}.", path=f"{path}/{k2}")
            else:
                x = p.get("estimated_amount")
                if type(x) in _NUM and x == 999999999:
                    rc.add("nine_nines", "Nine 9s used for estimated amount.", path=path + "/estimated_amount")


def validate_json(open_stream, rc: ReportCollector, version=None, plain_path: str | None = None) -> dict:
    """Validate a UTF-8 JSON byte stream (``open_stream()`` gives a fresh stream).

    ``version``: the rule set, or a ``declared version -> rule set`` function (default: the
    declared major version's rules, :func:`~.rules.major_rules`).
    ``plain_path``: the payload is this uncompressed UTF-8 file without BOM (the chunked path
    then reads it by offset instead of streaming it through the main thread).

    Like the official validator, which stops reading at the end of the top-level value, bytes
    after the document do not make it invalid: the document is checked without them and a
    ``trailing_data`` alert names them. The declared ``version`` is read wherever it is among the
    top-level members; when it comes after the charges array and selects other rules than the
    ones the items were checked against, the file is checked again with the right ones.
    """
    choose = as_chooser(version)
    saved = rc.snapshot()
    info = _validate_json(open_stream, rc, choose, plain_path)
    trailing = None
    if info.pop("syntax_error", False):
        trailing = find_trailing_data(open_stream)
        if trailing is not None:
            whole, doc_end = open_stream, trailing[0]

            def open_stream():
                return io.BufferedReader(_Prefix(whole(), doc_end), 1 << 20)

            plain_path = None
            rc.restore(saved)
            info = _validate_json(open_stream, rc, choose, None)
            info.pop("syntax_error", None)
    declared = info["version"]
    if info["rules_version"] is not None and choose(declared) != info["rules_version"]:
        target = choose(declared)
        rc.restore(saved)
        info = _validate_json(open_stream, rc, lambda _declared: target, plain_path)
        info.pop("syntax_error", None)
        info["version"] = declared
    if trailing is not None:
        _end, start, n, head = trailing
        rc.add("trailing_data", f"{n} byte(s) after the end of the JSON document (from byte {start}): "
               f"{head.decode('utf-8', 'backslashreplace')!r}"
               f"{'...' if n > len(head) else ''}. The CMS validator stops reading at the end of the top-level "
               "value, so they were not checked; a JSON reader that expects one document rejects the file.",
               path="")
    return info


def _validate_json(open_stream, rc: ReportCollector, choose, plain_path: str | None) -> dict:
    """One validation pass (see :func:`validate_json`); ``syntax_error`` in the result: an ijson
    error made it report ``invalid_json``."""
    # rules of a file whose version cannot be read (syntax error before it): what it would get undeclared
    info = {"format": "json", "version": None, "rules_version": choose(None), "rows_checked": 0}
    top: dict = {}
    try:
        with open_stream() as s:
            top, _ = collect_top(ijson.parse(s), stop_at_charges=True)
    except (ijson.JSONError, ijson.IncompleteJSONError, ValueError) as e:
        if not top:
            rc.add("invalid_json", f"JSON parsing error: {e}. The validator is unable to review a syntactically "
                   "invalid JSON file. Please ensure that your file is well-formatted JSON.", path="")
            info["syntax_error"] = True
            return info
    if not isinstance(top, dict):
        rc.add("invalid_json", "JSON parsing error: the top level is not an object.", path="")
        return info
    info["version"] = _declared(top)
    rv = choose(info["version"])
    info["rules_version"] = rv
    item_v, meta_v, full_v, fast = schemas(rv)
    v = vkey(rv)
    alerts_on = v >= (2, 2, 0)
    v3 = v >= (3, 0, 0)

    def check_item(it, index: int) -> None:
        if fast is None or not fast(it):
            for rule, msg, path in schema_errors(item_v, it, f"/standard_charge_information/{index}"):
                rc.add(rule, msg, path=path)
        if alerts_on and type(it) is dict:
            _payer_alerts(it, index, v3, rc)

    if fast is fast_ok_v3 and CHUNKED:
        res = _items_chunked(open_stream, rc, check_item, plain_path)
        if res is not None:
            info["rows_checked"], after = res
            top.update({k: val for k, val in after.items() if k not in top})
            info["version"] = _declared(top)
            meta = {k: _plain(top[k]) for k in CAPTURED if k in top}
            for rule, msg, path in schema_errors(meta_v, meta):
                rc.add(rule, msg, path=path)
            _file_alerts(meta, rv, rc)
            return info
    n = 0
    error = None
    with open_stream() as s:
        tracker = TailTracker(s)
        try:
            for it in ijson.items(tracker, "standard_charge_information.item", use_float=True, buf_size=1 << 20):
                tracker.mark()
                check_item(it, n)
                n += 1
        except (ijson.JSONError, ijson.IncompleteJSONError, ValueError) as e:
            error = e
    info["rows_checked"] = n
    if error is not None:
        rc.reset_errors()
        rc.add("invalid_json", f"JSON parsing error: {error}. The validator is unable to review a syntactically "
               "invalid JSON file. Please ensure that your file is well-formatted JSON.", path="")
        info["syntax_error"] = True
        return info
    if tracker.total < 8 * 1024**2 or n == 0:
        try:
            with open_stream() as s:
                full, _ = collect_top(ijson.parse(s), stop_at_charges=False)
            top.update({k: val for k, val in full.items() if k not in top})
        except (ijson.JSONError, ijson.IncompleteJSONError, ValueError) as e:
            rc.reset_errors()
            rc.add("invalid_json", f"JSON parsing error: {e}. The validator is unable to review a syntactically "
                   "invalid JSON file. Please ensure that your file is well-formatted JSON.", path="")
            info["syntax_error"] = True
            return info
    elif not tracker.overflow:
        top.update({k: val for k, val in find_tail_members(b"".join(tracker.since_mark)).items() if k not in top})
    info["version"] = _declared(top)
    meta = {k: _plain(top[k]) for k in CAPTURED if k in top}
    for rule, msg, path in schema_errors(meta_v if n else full_v, meta):
        rc.add(rule, msg, path=path)
    _file_alerts(meta, rv, rc)
    return info


def _items_chunked(open_stream, rc: ReportCollector, check_item, plain_path: str | None = None
                   ) -> tuple[int, dict] | None:
    """v3.0.0 items through the parser's parallel Arrow chunks (see :mod:`.json_fast`).

    Returns ``(items checked, top-level members after the array)``, or None (and ``rc`` as it
    was) when the sequential path must decide: small payload, layout the cutter does not
    handle, a JSON syntax error anywhere (so that its message is the sequential one), no items.
    """
    from price_pipeline.lib.parse.mrf.json_chunks import ARRAY_KEY, Restart, read_charges_parallel

    from .json_fast import check_chunk_v3, read_plain_file

    saved = rc.snapshot()

    def consume(res, _base) -> tuple[int, Exception | None]:
        start = rc_state["n"]
        if res[0] == "ok":
            if res[2] is not None:
                _emit_alerts_v3(res[2], start, rc)
            rc_state["n"] += res[1]
            return res[1], None
        k = 0
        try:
            for it in ijson.items(io.BytesIO(b"[" + res[1] + b"]"), "item", use_float=True):
                check_item(it, start + k)
                k += 1
        except (ijson.JSONError, ijson.IncompleteJSONError, ValueError) as e:
            return k, e
        finally:
            rc_state["n"] += k
        return k, None

    rc_state = {"n": 0}
    try:
        if plain_path is not None and PLAIN_READER:
            if os.path.getsize(plain_path) < CHUNKED_MIN_BYTES:
                return None
            n, tail, error = read_plain_file(plain_path, check_chunk_v3, lambda res: consume(res, None),
                                             chunk_bytes=CHUNK_BYTES, workers=CHUNK_WORKERS,
                                             max_inflight=CHUNK_WORKERS + 1)
        else:
            n, tail, _total, error = read_charges_parallel(
                open_stream, process=check_chunk_v3, consume=consume, workers=CHUNK_WORKERS, verify_cuts=False,
                chunk_bytes=CHUNK_BYTES, max_inflight=CHUNK_WORKERS + 1, min_bytes=CHUNKED_MIN_BYTES)
        if error is None and tail is not None and n:
            t = tail.lstrip(b" \t\r\n")
            if t[:1] == b"," and ARRAY_KEY not in t:
                return n, parse_tail_members(t)
            if t.rstrip(b" \t\r\n") == b"}":
                return n, {}
    except Restart:
        pass
    except (ijson.JSONError, ijson.IncompleteJSONError, ValueError):
        pass
    rc.restore(saved)
    return None


def _emit_alerts_v3(rows, start: int, rc: ReportCollector) -> None:
    """Alerts of a chunk that passed the column checks (rows: item, j, k, kind; in order)."""
    from .json_fast import ALERT_KEYS, EST

    kinds = rows[:, 3]
    n_est = int(np.count_nonzero(kinds == EST))
    rc.count("estimated_amount_v3", n_est)
    rc.count("nine_nines", len(rows) - n_est)
    for item, j, k, kind in rows[: rc.room].tolist():
        path = f"/standard_charge_information/{start + item}/standard_charges/{j}/payers_information/{k}"
        if kind == EST:
            rc.keep("estimated_amount_v3", _EST_MSG, path=path)
        else:
            key, friendly = ALERT_KEYS[kind]
            rc.keep("nine_nines", f"Nine 9s used for {friendly}.", path=f"{path}/{key}")


def _declared(top: dict) -> str | None:
    """The declared ``version`` member (a string), wherever it was among the top-level members."""
    v = top.get("version")
    return v if isinstance(v, str) else None


# --- bytes after the document -------------------------------------------------------------------
_WS_BYTES = np.zeros(256, dtype=bool)
_WS_BYTES[[0x20, 0x09, 0x0A, 0x0D]] = True


def json_document_end(stream, chunk_bytes: int = 1 << 22) -> tuple[int, bytes] | None:
    """Offset just after the top-level object or array of a UTF-8 JSON ``stream``, and the rest of
    the chunk read after it; None when the stream does not start with one or ends first.

    Only strings and brackets are tracked (vectorised per chunk: a quote preceded by an odd
    run of backslashes is escaped, the parity of unescaped quotes before a byte says whether it
    is inside a string, and the depth is a running sum of brackets outside strings); syntax is not
    checked. It runs only after the JSON reader reported a syntax error.
    """
    base, depth, in_str, bs_carry, started = 0, 0, False, 0, False
    while True:
        data = stream.read(chunk_bytes)
        if not data:
            return None
        a = np.frombuffer(data, dtype=np.uint8)
        n = len(a)
        if not started:
            nonws = np.flatnonzero(~_WS_BYTES[a])
            if not len(nonws):
                base += n
                continue
            if a[nonws[0]] not in (0x7B, 0x5B):
                return None
            started = True
        bs = a == 0x5C
        if bs.any():
            idx = np.arange(n, dtype=np.int64)
            last_non = np.maximum.accumulate(np.where(bs, -1, idx))
            before = np.empty(n, dtype=np.int64)  # backslashes right before each byte
            before[0] = bs_carry
            prev = last_non[:-1]
            before[1:] = idx[:-1] - prev + np.where(prev < 0, bs_carry, 0)
            quote = (a == 0x22) & ((before & 1) == 0)
            bs_carry = int(n - 1 - last_non[-1]) + (bs_carry if last_non[-1] < 0 else 0)
        else:
            quote = a == 0x22
            if bs_carry & 1:
                quote[0] = False
            bs_carry = 0
        qc = np.cumsum(quote, dtype=np.int64)
        inside = ((qc - quote + int(in_str)) & 1).astype(bool)
        opens = ((a == 0x7B) | (a == 0x5B)) & ~inside
        closes = ((a == 0x7D) | (a == 0x5D)) & ~inside
        d = depth + np.cumsum(opens.astype(np.int64) - closes.astype(np.int64))
        hit = np.flatnonzero(closes & (d <= 0))
        if len(hit):
            k = int(hit[0]) + 1
            return base + k, data[k:]
        depth, in_str, base = int(d[-1]), bool((int(in_str) + int(qc[-1])) & 1), base + n


def find_trailing_data(open_stream, keep: int = 60) -> tuple[int, int, int, bytes] | None:
    """``(document end, offset of the first non-blank byte after it, bytes from there to the end,
    the first ``keep`` of them)`` when non-whitespace follows the top-level JSON value, else None."""
    with open_stream() as s:
        found = json_document_end(s)
        if found is None:
            return None
        end, rest = found
        start, total, head = None, 0, b""
        pos = end
        while True:
            if start is None:
                stripped = rest.lstrip(b" \t\r\n")
                if stripped:
                    start = pos + len(rest) - len(stripped)
                    rest = stripped
            if start is not None:
                total += len(rest)
                if len(head) < keep:
                    head += rest[: keep - len(head)]
            pos += len(rest)
            rest = s.read(1 << 22)
            if not rest:
                break
    return None if start is None else (end, start, total, head)


class _Prefix(InnerReader):
    """The first ``limit`` bytes of ``inner`` (the JSON document without what follows it)."""

    def __init__(self, inner, limit: int):
        self.inner = inner
        self.left = limit

    def readinto(self, b) -> int:
        if self.left <= 0:
            return 0
        data = self.inner.read(min(len(b), self.left))
        b[: len(data)] = data
        self.left -= len(data)
        return len(data)


def _plain(v):
    """ijson Decimals -> int/float, so that types compare like JavaScript numbers."""
    from decimal import Decimal

    if isinstance(v, Decimal):
        return int(v) if v == v.to_integral_value() and "E" not in str(v) and "." not in str(v) else float(v)
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


def _file_alerts(meta: dict, rv: str, rc: ReportCollector) -> None:
    v = vkey(rv)
    if v[0] == 2:
        aff = meta.get("affirmation")
        if isinstance(aff, dict) and aff.get("confirm_affirmation") is False:
            rc.add("false_attestation", "Affirmation value is false.", path="/affirmation/confirm_affirmation")
    if v >= (3, 0, 0):
        att = meta.get("attestation")
        if isinstance(att, dict) and att.get("confirm_attestation") is False:
            rc.add("false_attestation", "Attestation value is false.", path="/attestation/confirm_attestation")
    expected = {(2, 1): ["2.0.0", "2.1.0"], (2, 2): ["2.0.0", "2.2.0", "2.2.1"], (3, 0): ["3.0.0"]}.get(v[:2])
    ver = meta.get("version")
    if expected and isinstance(ver, str) and ver not in expected:
        exp = (f'the expected template version "{expected[0]}"' if len(expected) == 1 else
               "an expected template version " + ", ".join(f'"{e}"' for e in expected))
        rc.add("version_mismatch", f"The value in this MRF's version data element \"{ver}\" does not match {exp} "
               "for the data dictionary requirements selected for validation.", path="/version")
