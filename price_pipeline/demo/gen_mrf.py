"""Deterministic synthetic CMS v3.0.0 machine-readable files (tall CSV, wide CSV, JSON), streamed.

The project's own generator, so tests and benchmarks never need anything outside the
repository at run time. Same arguments give the same bytes on every machine (only
``random.Random(seed)`` and two-decimal formatting are used), memory stays flat for any size.

    python -m price_pipeline.demo.gen_mrf --format tall --rows 100000 --payers 20 --out f.csv
    python -m price_pipeline.demo.gen_mrf --format wide --size-mb 1024 --payers 50 --out f.csv

``--rows``: tall = data rows (one per item x payer/plan; an item without payer charges has one
row with a blank payer), wide = data rows (one per item), json = items. ``--size-mb`` instead
picks the row count from a small calibration run. ``--payers``: distinct payer/plan pairs (wide:
one group of 9 columns each); each item is covered by about two thirds of them.

What the data holds (enough to exercise normalisation, not a model of real prices): CPT, HCPCS,
MS-DRG, RC, NDC and LOCAL codes, one or two per item, some written the way hospitals do
(``DRG 470``, ``450`` for a revenue code, hyphenated NDCs, lower-case HCPCS); gross, discounted
cash, min and max per item; per payer a negotiated dollar amount (mostly) or a percentage or an
algorithm with median / 10th / 90th percentile and count, a methodology, sometimes notes.
The files pass ``price-pipeline validate`` under the v3.0 rules.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from collections.abc import Iterator

# The attestation CMS requires, word for word: the validator owns the text.
from price_pipeline.lib.validate.rules import ATTESTATION

_PAYERS = ["Aetna", "Cigna", "Humana", "UnitedHealthcare", "Blue Cross", "Kaiser Permanente", "Molina Healthcare",
           "Ambetter", "Oscar Health", "Medica", "Anthem", "Highmark", "Wellcare", "Priority Health", "Harvard Pilgrim"]
_PLANS = ["PPO", "HMO", "EPO", "POS", "Commercial", "Medicare Advantage", "Medicaid Managed Care", "Bronze HSA",
          "Silver", "Gold", "Marketplace Gold", "Exchange"]
_WORDS = ["MRI", "CT", "X-ray", "ultrasound", "panel", "visit", "injection", "infusion", "repair", "excision",
          "biopsy", "culture", "therapy", "arthroscopy", "catheterization", "screening", "evaluation", "room",
          "supply", "implant", "drug", "assay", "block", "graft", "scan", "consult", "suture", "dressing"]
_QUALIFIERS = ["with contrast", "without contrast", "bilateral", "each 15 minutes", "per unit", "level 3",
               "level 5", "complete", "limited", "initial", "subsequent", "per diem", "per 10 mg", "first hour"]
# "other" is left out: CMS then requires an explanation in the notes.
_METHODS = ["fee schedule", "case rate", "per diem", "percent of total billed charges"]
_SETTINGS = ["inpatient", "outpatient", "both"]
_CSV_HEAD = ["hospital_name", "last_updated_on", "version", "location_name", "hospital_address",
             "license_number|{state}", "type_2_npi", ATTESTATION, "attester_name", "general_contract_provisions"]
_TALL_COLUMNS = ["description", "code|1", "code|1|type", "code|2", "code|2|type", "setting",
                 "drug_unit_of_measurement", "drug_type_of_measurement", "standard_charge|gross",
                 "standard_charge|discounted_cash", "payer_name", "plan_name", "modifiers",
                 "standard_charge|negotiated_dollar", "standard_charge|negotiated_percentage",
                 "standard_charge|negotiated_algorithm", "median_amount", "10th_percentile", "90th_percentile",
                 "count", "standard_charge|methodology", "standard_charge|min", "standard_charge|max",
                 "additional_generic_notes"]
_WIDE_GROUP = ["standard_charge|{p}|negotiated_dollar", "standard_charge|{p}|negotiated_percentage",
               "standard_charge|{p}|negotiated_algorithm", "median_amount|{p}", "10th_percentile|{p}",
               "90th_percentile|{p}", "count|{p}", "standard_charge|{p}|methodology", "additional_payer_notes|{p}"]


def _q(value: str) -> str:
    """One CSV cell (RFC 4180 quoting only when needed)."""
    if any(c in value for c in ',"\n\r'):
        return '"' + value.replace('"', '""') + '"'
    return value


def _money(value: float) -> str:
    return f"{value:.2f}"


class Hospital:
    """The hospital's identity, payer/plan pairs and a deterministic stream of items."""

    def __init__(self, seed: int, payers: int):
        self.rng = random.Random(f"pp-gen/{seed}")
        rng = self.rng
        self.name = f"Synthetic {rng.choice(['Lakeside', 'Riverside', 'Madison', 'Summit', 'Valley'])} Hospital {seed}"
        self.state = rng.choice(["NY", "CA", "TX", "OH", "FL", "WA"])
        self.npis = [str(rng.randrange(1_000_000_000, 2_000_000_000)) for _ in range(2)]
        pairs = [(p, q) for p in _PAYERS for q in _PLANS]
        rng.shuffle(pairs)
        while len(pairs) < payers:  # more pairs than the vocabulary: numbered plans
            pairs.append((rng.choice(_PAYERS), f"Plan {len(pairs)}"))
        self.payers = pairs[:payers]

    def csv_head(self) -> list[str]:
        state = self.state
        return [
            ",".join(_q(c.format(state=state)) for c in _CSV_HEAD),
            ",".join(_q(v) for v in [self.name, "2026-04-01", "3.0.0", self.name,
                                    f"1 Main Street, Springfield, {state} 12345", f"{1000 + len(self.name)}",
                                    "|".join(self.npis), "true", "Leigh Attester",
                                    "Claims above $200,000.00 are paid at 50% of charges."]),
        ]

    def _codes(self, rng: random.Random) -> tuple[list[tuple[str, str]], str | None, str | None]:
        kind = rng.random()
        unit = unit_type = None
        if kind < 0.45:
            code = f"{rng.randrange(10000, 99999)}"
            codes = [(code, "CPT")]
        elif kind < 0.6:
            code = f"{rng.choice('ACEGJLQ')}{rng.randrange(1000, 9999)}"
            codes = [(code.lower() if rng.random() < 0.05 else code, "HCPCS")]
        elif kind < 0.72:
            number = rng.randrange(1, 999)
            codes = [(f"DRG {number}" if rng.random() < 0.1 else f"{number:03d}", "MS-DRG")]
        elif kind < 0.82:
            ndc = f"{rng.randrange(1000, 99999)}-{rng.randrange(100, 9999)}-{rng.randrange(1, 99)}"
            codes = [(ndc, "NDC")]
            unit, unit_type = f"{rng.choice([1, 2, 5, 10, 0.5])}", rng.choice(["UN", "ML", "GR", "ME"])
        else:
            codes = [(f"{rng.randrange(100000, 999999)}", "LOCAL")]
        if rng.random() < 0.5:  # a revenue code beside it, sometimes without its leading zero
            rc = rng.randrange(100, 999)
            codes.append((f"{rc}" if rng.random() < 0.2 else f"{rc:04d}", "RC"))
        return codes, unit, unit_type

    def items(self) -> Iterator[dict]:
        """Items forever, each with its item-level charges and the payer charges of its plans."""
        rng = self.rng
        index = 0
        while True:
            index += 1
            codes, unit, unit_type = self._codes(rng)
            base = round(rng.uniform(20, 20000), 2)
            charges = []
            for payer, plan in self.payers:
                if rng.random() >= 0.66:
                    continue
                charge = {"payer": payer, "plan": plan, "methodology": rng.choice(_METHODS)}
                draw = rng.random()
                if draw < 0.85:
                    charge["dollar"] = round(base * rng.uniform(0.2, 0.9), 2)
                else:
                    if draw < 0.93:
                        charge["percentage"] = round(rng.uniform(20, 95), 2)
                    else:
                        charge["algorithm"] = f"Allowed amount is {rng.randrange(100, 160)}% of the Medicare rate."
                    median = round(base * rng.uniform(0.3, 0.8), 2)
                    charge.update(median=median, p10=round(median * 0.8, 2), p90=round(median * 1.3, 2),
                                  count=rng.choice(["1 through 10", str(rng.randrange(11, 400))]))
                if rng.random() < 0.1:
                    charge["notes"] = "Rate effective until the contract renewal."
                charges.append(charge)
            dollars = [c["dollar"] for c in charges if "dollar" in c]
            yield {
                "description": f"{rng.choice(_WORDS).capitalize()} {rng.choice(_WORDS)}, {rng.choice(_QUALIFIERS)} #{index}",
                "codes": codes, "unit": unit, "unit_type": unit_type,
                "setting": rng.choice(_SETTINGS),
                "gross": base, "cash": round(base * rng.uniform(0.5, 0.9), 2),
                "min": min(dollars) if dollars else None, "max": max(dollars) if dollars else None,
                "notes": "Price includes supplies." if rng.random() < 0.05 else "",
                "charges": charges,
            }


def _code_cells(codes: list[tuple[str, str]]) -> list[str]:
    cells = []
    for i in range(2):
        cells += list(codes[i]) if i < len(codes) else ["", ""]
    return cells


def _opt(value) -> str:
    if value is None or value == "":
        return ""
    return _money(value) if isinstance(value, float) else str(value)


def tall_lines(h: Hospital, rows: int) -> Iterator[str]:
    yield from h.csv_head()
    yield ",".join(_q(c) for c in _TALL_COLUMNS)
    written = 0
    for item in h.items():
        head = [_q(item["description"]), *(_q(c) for c in _code_cells(item["codes"])), item["setting"],
                item["unit"] or "", item["unit_type"] or "", _money(item["gross"]), _money(item["cash"])]
        tail = [_opt(item["min"]), _opt(item["max"]), _q(item["notes"])]
        for c in item["charges"] or [None]:
            if c is None:
                payer = ["", "", "", "", "", "", "", "", "", "", ""]
            else:
                payer = [_q(c["payer"]), _q(c["plan"]), "", _opt(c.get("dollar")), _opt(c.get("percentage")),
                         _q(c.get("algorithm", "")), _opt(c.get("median")), _opt(c.get("p10")),
                         _opt(c.get("p90")), c.get("count", ""), c["methodology"]]
            yield ",".join(head + payer + tail)
            written += 1
            if written >= rows:
                return


def wide_lines(h: Hospital, rows: int) -> Iterator[str]:
    yield from h.csv_head()
    groups = [f"{p}|{q}" for p, q in h.payers]
    columns = _TALL_COLUMNS[:10] + ["modifiers"] + [c.format(p=g) for g in groups for c in _WIDE_GROUP] + \
        ["standard_charge|min", "standard_charge|max", "additional_generic_notes"]
    columns = [c for c in columns if c not in ("payer_name", "plan_name")]
    yield ",".join(_q(c) for c in columns)
    position = {pair: i for i, pair in enumerate(h.payers)}
    for _, item in zip(range(rows), h.items(), strict=False):
        cells = [[""] * 9 for _ in groups]
        for c in item["charges"]:
            cells[position[(c["payer"], c["plan"])]] = [
                _opt(c.get("dollar")), _opt(c.get("percentage")), _q(c.get("algorithm", "")), _opt(c.get("median")),
                _opt(c.get("p10")), _opt(c.get("p90")), c.get("count", ""), c["methodology"], _q(c.get("notes", ""))]
        row = [_q(item["description"]), *(_q(c) for c in _code_cells(item["codes"])), item["setting"],
               item["unit"] or "", item["unit_type"] or "", _money(item["gross"]), _money(item["cash"]), ""]
        row += [v for group in cells for v in group]
        row += [_opt(item["min"]), _opt(item["max"]), _q(item["notes"])]
        yield ",".join(row)


def json_chunks(h: Hospital, rows: int) -> Iterator[str]:
    head = {
        "hospital_name": h.name, "last_updated_on": "2026-04-01", "version": "3.0.0",
        "location_name": [h.name], "hospital_address": [f"1 Main Street, Springfield, {h.state} 12345"],
        "license_information": {"state": h.state, "license_number": f"{1000 + len(h.name)}"},
        "attestation": {"attestation": ATTESTATION, "confirm_attestation": True, "attester_name": "Leigh Attester"},
        "type_2_npi": h.npis,
    }
    yield json.dumps(head)[:-1] + ', "standard_charge_information": ['
    for i, item in zip(range(rows), h.items(), strict=False):
        charge = {"setting": item["setting"], "gross_charge": item["gross"], "discounted_cash": item["cash"]}
        if item["min"] is not None:
            charge.update(minimum=item["min"], maximum=item["max"])
        payers = []
        for c in item["charges"]:
            p = {"payer_name": c["payer"], "plan_name": c["plan"], "methodology": c["methodology"]}
            for key, out in (("dollar", "standard_charge_dollar"), ("percentage", "standard_charge_percentage"),
                             ("algorithm", "standard_charge_algorithm"), ("median", "median_amount"),
                             ("p10", "10th_percentile"), ("p90", "90th_percentile"), ("count", "count"),
                             ("notes", "additional_payer_notes")):
                if key in c:
                    p[out] = c[key]
            payers.append(p)
        if payers:
            charge["payers_information"] = payers
        if item["notes"]:
            charge["additional_generic_notes"] = item["notes"]
        entry = {"description": item["description"],
                 "code_information": [{"code": code, "type": typ} for code, typ in item["codes"]],
                 "standard_charges": [charge]}
        if item["unit"]:
            entry["drug_information"] = {"unit": float(item["unit"]), "type": item["unit_type"]}
        yield ("," if i else "") + json.dumps(entry)
    yield "]}"


def write(fmt: str, rows: int, out, *, payers: int = 20, seed: int = 1) -> int:
    """Write one file to the binary stream ``out``; returns the bytes written."""
    h = Hospital(seed, payers)
    if fmt == "tall":
        parts = (line + "\n" for line in tall_lines(h, rows))
    elif fmt == "wide":
        parts = (line + "\n" for line in wide_lines(h, rows))
    elif fmt == "json":
        parts = json_chunks(h, rows)
    else:
        raise ValueError(f"unknown format {fmt!r}")
    written, buffer = 0, []
    for part in parts:
        buffer.append(part)
        if len(buffer) >= 2000:
            data = "".join(buffer).encode()
            out.write(data)
            written += len(data)
            buffer = []
    data = "".join(buffer).encode()
    out.write(data)
    return written + len(data)


def rows_for_size(fmt: str, size_bytes: int, *, payers: int = 20, seed: int = 1) -> int:
    """Rows (items for JSON) that make a file of about ``size_bytes``, from a calibration run."""

    class _Count:
        n = 0

        def write(self, data: bytes) -> None:
            self.n += len(data)

    sample = 4000 if fmt == "tall" else 1000
    counter = _Count()
    write(fmt, sample, counter, payers=payers, seed=seed)
    return max(1, round(sample * size_bytes / counter.n))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--format", required=True, choices=["tall", "wide", "json"])
    size = parser.add_mutually_exclusive_group(required=True)
    size.add_argument("--rows", type=int, help="tall/wide data rows, JSON items")
    size.add_argument("--size-mb", type=float, help="about this many MB (1 MB = 2**20 bytes)")
    parser.add_argument("--payers", type=int, default=20, help="payer/plan pairs (default 20)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", required=True, help="output path ('-' = stdout)")
    args = parser.parse_args(argv)
    rows = args.rows or rows_for_size(args.format, int(args.size_mb * 2**20), payers=args.payers, seed=args.seed)
    if args.out == "-":
        written = write(args.format, rows, sys.stdout.buffer, payers=args.payers, seed=args.seed)
    else:
        tmp = f"{args.out}.part"
        with open(tmp, "wb") as out:
            written = write(args.format, rows, out, payers=args.payers, seed=args.seed)
        os.replace(tmp, args.out)
    print(json.dumps({"format": args.format, "rows": rows, "bytes": written, "payers": args.payers,
                      "seed": args.seed}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
