"""The official validator's messages for the CSV rules (``@cmsgov/hpt-validator`` 2.4.0 wording).
"""

from __future__ import annotations

PAYER_SUFFIX = (" when a payer specific negotiated charge is encoded as a dollar amount, percentage, or algorithm")

MSG = {
    "cond_code_pair_missing": (
        "If a standard charge is encoded, there must be a corresponding code and code type pairing. The code and "
        "code type pairing do not need to be in the first code and code type columns (i.e., code|1 and code|1|type)."
    ),
    "cond_item_requires_charge": (
        'If an item or service is encoded, a corresponding valid value must be encoded for at least one of the '
        'following: "Gross Charge", "Discounted Cash Price", "Payer-Specific Negotiated Charge: Dollar Amount", '
        '"Payer-Specific Negotiated Charge: Percentage", "Payer-Specific Negotiated Charge: Algorithm".'
    ),
    "cond_dollar_needs_min_max": (
        'If there is a "payer specific negotiated charge" encoded as a dollar amount, there must be a corresponding '
        "valid value encoded for the deidentified minimum and deidentified maximum negotiated charge data."
    ),
    "cond_ndc_drug_info": (
        "If code type is NDC, then the corresponding drug unit of measure and drug type of measure data element "
        "must be encoded."
    ),
    "cond_modifier_info": (
        "If a modifier is encoded without an item or service, then a description and one of the following is the "
        "minimum information required: additional_payer_notes, standard_charge | negotiated_dollar, "
        "standard_charge | negotiated_percentage, or standard_charge | negotiated_algorithm."
    ),
    "cond_estimated_amount_required": (
        'If a "payer specific negotiated charge" can only be expressed as a percentage or algorithm, then a '
        'corresponding "Estimated Allowed Amount" must also be encoded.'
    ),
    "cond_count_required": (
        'If a "payer specific negotiated charge" is expressed as a percentage or algorithm, then a corresponding '
        '"Count of Allowed Amounts" must also be encoded.'
    ),
    "cond_charge_with_payer_plan": (
        "If a payer name and plan name are encoded, a payer-specific charge must also be encoded."
    ),
}


def notes_msg(element: str, value: str) -> str:
    return (f'If the "{element}" encoded value is "{value}", there must be a corresponding explanation found in '
            'the "additional notes" for the associated payer-specific negotiated charge.')


def pct_msg(field: str) -> str:
    return (f'If a "payer specific negotiated charge" is expressed as a percentage or algorithm, and count of '
            f'allowed amounts is not zero, then a corresponding "{field}" must also be encoded.')


def required_msg(col: str, suffix: str = "") -> str:
    return f'A value is required for "{col}"{suffix}. You must encode the missing information.'


def allowed_msg(col: str, value: str, allowed) -> str:
    return (f'"{col}" value "{value}" is not one of the allowed valid values. You must encode one of these valid '
            f"values: {', '.join(allowed)}")
