"""Data drift: does a batch look like the data the model was trained on?

Per column, a two-sample test against the training reference: Kolmogorov-Smirnov for numeric
columns, chi-square on the category counts for the others. A column drifts when the test's
p-value is below `p_value`; the batch drifts when at least `drift_share` of its columns do.
"""

import json
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from pandas.api import types
from scipy import stats

# Logged with every model version at training time: batch inference compares against it.
REFERENCE_ARTIFACT = "reference/training_features.csv"
REFERENCE_MAX_ROWS = 5000


def reference_sample(features: pd.DataFrame, max_rows: int = REFERENCE_MAX_ROWS) -> pd.DataFrame:
    """The training features, or a seeded sample of them when there are many rows."""
    if len(features) <= max_rows:
        return features
    return features.sample(max_rows, random_state=0)


@dataclass
class ColumnDrift:
    column: str
    test: str  # "ks" or "chi-square"
    statistic: float
    p_value: float
    drifted: bool


@dataclass
class DriftReport:
    columns: list[ColumnDrift]
    p_value: float
    drift_share: float
    reference_rows: int
    batch_rows: int
    skipped: list[str] = field(default_factory=list)  # columns missing on one side

    @property
    def drifted(self) -> list[str]:
        return [column.column for column in self.columns if column.drifted]

    @property
    def share(self) -> float:
        return len(self.drifted) / len(self.columns) if self.columns else 0.0

    @property
    def dataset_drift(self) -> bool:
        return bool(self.columns) and self.share >= self.drift_share

    def details(self) -> str:
        return (
            f"{len(self.drifted)} of {len(self.columns)} columns drifted ({self.share:.0%}; "
            f"threshold {self.drift_share:.0%} of the columns at p < {self.p_value})"
        )

    def summary(self) -> str:
        return f"{'DRIFT' if self.dataset_drift else 'no drift'}: {self.details()}"

    def as_dict(self) -> dict:
        return {
            **asdict(self),
            "drifted_columns": self.drifted,
            "share": self.share,
            "dataset_drift": self.dataset_drift,
            "summary": self.summary(),
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2)

    def to_markdown(self, title: str = "Data drift report") -> str:
        rows = sorted(self.columns, key=lambda column: column.p_value)
        lines = [
            f"# {title}",
            "",
            f"**{self.summary()}**",
            "",
            f"Batch: {self.batch_rows} rows; training reference: {self.reference_rows} rows.",
            "",
            "| column | test | statistic | p-value | drifted |",
            "| --- | --- | ---: | ---: | --- |",
            *(
                f"| {c.column} | {c.test} | {c.statistic:.4f} | {c.p_value:.4g} | "
                f"{'yes' if c.drifted else 'no'} |"
                for c in rows
            ),
        ]
        if self.skipped:
            lines += ["", f"Not compared (missing on one side): {', '.join(self.skipped)}"]
        return "\n".join(lines) + "\n"


def _numeric(column: pd.Series) -> bool:
    return types.is_numeric_dtype(column) and not types.is_bool_dtype(column)


def _chi_square(reference: pd.Series, batch: pd.Series) -> tuple[float, float]:
    counts = pd.concat(
        [reference.astype(str).value_counts(), batch.astype(str).value_counts()], axis=1
    ).fillna(0)
    if len(counts) < 2:  # one category on both sides: nothing can have shifted
        return 0.0, 1.0
    result = stats.chi2_contingency(counts.to_numpy().T)
    return float(result.statistic), float(result.pvalue)


def column_drift(reference: pd.Series, batch: pd.Series, p_value: float) -> ColumnDrift:
    reference, batch = reference.dropna(), batch.dropna()
    if reference.empty or batch.empty:
        statistic, p, test = 0.0, 1.0, "none (no values)"
    elif _numeric(reference) and _numeric(batch):
        result = stats.ks_2samp(reference.to_numpy(float), batch.to_numpy(float))
        statistic, p, test = float(result.statistic), float(result.pvalue), "ks"
    else:
        (statistic, p), test = _chi_square(reference, batch), "chi-square"
    p = float(np.nan_to_num(p, nan=1.0))
    return ColumnDrift(str(reference.name), test, statistic, p, p < p_value)


def detect_drift(
    reference: pd.DataFrame,
    batch: pd.DataFrame,
    columns: list[str] | None = None,
    p_value: float = 0.05,
    drift_share: float = 0.5,
) -> DriftReport:
    """Compare `columns` (default: the reference's) of the batch with the reference."""
    columns = list(columns or reference.columns)
    shared = [c for c in columns if c in reference.columns and c in batch.columns]
    return DriftReport(
        columns=[column_drift(reference[c], batch[c], p_value) for c in shared],
        p_value=p_value,
        drift_share=drift_share,
        reference_rows=len(reference),
        batch_rows=len(batch),
        skipped=[c for c in columns if c not in shared],
    )
