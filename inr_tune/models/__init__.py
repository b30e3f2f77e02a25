"""INR models: SIREN, the hash-grid NGP field, the variants and their input encoding.

The Lightning module (``inr_tune.models.module``) is not imported here, so that this
package stays free of Lightning.
"""

from __future__ import annotations

from inr_tune.models.ngp import HashGridEncoding, NGPField
from inr_tune.models.siren import OUTPUT_INITS, SineLayer, Siren
from inr_tune.models.size import count_params
from inr_tune.models.variants import (
    BASIS_TYPES,
    INR_TYPES,
    FactorizedField,
    FieldINR,
    FieldSpec,
    NGPFieldINR,
    SirenIdField,
    SirenTField,
    SirenTXYField,
    Standardizer,
    build_model,
    encode_inputs,
    encode_space,
    encode_time,
    predict_window,
)

__all__ = [
    "BASIS_TYPES",
    "INR_TYPES",
    "OUTPUT_INITS",
    "FactorizedField",
    "FieldINR",
    "FieldSpec",
    "HashGridEncoding",
    "NGPField",
    "NGPFieldINR",
    "SineLayer",
    "Siren",
    "SirenIdField",
    "SirenTField",
    "SirenTXYField",
    "Standardizer",
    "build_model",
    "count_params",
    "encode_inputs",
    "encode_space",
    "encode_time",
    "predict_window",
]
