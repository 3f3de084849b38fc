# Template's: kept current by `copier update`; change it through configs/ and CUSTOMIZE files.
"""Data drift: does a batch look like the data the model was trained on?

What is compared: the columns the model sees, its own add_features() output computed from the
training reference and from the batch (plus the target when the batch has it). Per column, a
two-sample test: Kolmogorov-Smirnov for numbers; chi-square for the others, on the counts of the
reference's most frequent categories, the rest and categories unseen in training counted as one
"other". A column without a category frequent enough to compare (an id, a timestamp as text) is
skipped, with the reason. Out of many columns some fall below any p-value by chance: the
p-values are adjusted (Benjamini-Hochberg), a column drifts when its adjusted p-value is below
`p_value`, and the batch drifts when at least `drift_share` of the compared columns do.
"""

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from pandas.api import types
from scipy import stats

from .features import model_features

# Logged with every model version at training time: batch inference compares against it.
REFERENCE_ARTIFACT = "reference/training_features.csv"
REFERENCE_MAX_ROWS = 5000
# Chi-square's approximation needs each compared category expected about 5 times or more.
TOP_CATEGORIES = 20
MIN_EXPECTED = 5
MODEL_FEATURES = "the model's features (its add_features output)"


def reference_sample(features: pd.DataFrame, max_rows: int = REFERENCE_MAX_ROWS) -> pd.DataFrame:
    """The training features, or a seeded sample of them when there are many rows."""
    return features if len(features) <= max_rows else features.sample(max_rows, random_state=0)


def columns_seen(
    load_model: Callable, reference: pd.DataFrame, batch: pd.DataFrame, target: str
) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """The reference and the batch as the model sees them: its add_features() on the
    reference's input columns (integers as floats, as in training), plus the target where the
    batch has it; and what they are. The raw columns, and why, when the model's add_features
    cannot run (a version saved by an older template)."""
    labels = [target] if target in batch.columns else []  # labels that came later
    inputs = [column for column in reference.columns if column != target]

    def seen(model, frame: pd.DataFrame) -> pd.DataFrame:
        rows = frame[inputs].reset_index(drop=True)
        rows = rows.astype({column: "float64" for column in rows.select_dtypes("integer")})
        return model_features(model, rows).assign(**{c: frame[c].to_numpy() for c in labels})

    try:
        model = load_model()
        return seen(model, reference), seen(model, batch), MODEL_FEATURES
    except Exception as error:
        note = f"the raw columns: the model's add_features did not run ({error!r})"
        return reference[inputs + labels], batch, note


@dataclass
class ColumnDrift:
    column: str
    test: str  # "ks" or "chi-square"
    statistic: float
    p_value: float  # the test's own
    adjusted_p_value: float  # Benjamini-Hochberg, over the report's columns
    drifted: bool


@dataclass
class DriftReport:
    columns: list[ColumnDrift]
    p_value: float
    drift_share: float
    reference_rows: int
    batch_rows: int
    skipped: dict[str, str] = field(default_factory=dict)  # column -> why it was not compared
    compared: str = ""

    @property
    def drifted(self) -> list[str]:
        return [column.column for column in self.columns if column.drifted]

    @property
    def share(self) -> float:
        return len(self.drifted) / len(self.columns) if self.columns else 0.0

    @property
    def dataset_drift(self) -> bool:
        return bool(self.drifted) and self.share >= self.drift_share

    def details(self) -> str:
        skipped = f"; {len(self.skipped)} not compared" if self.skipped else ""
        share = f"{self.drift_share:.0%} of the columns" if self.drift_share else "any column"
        return (
            f"{len(self.drifted)} of {len(self.columns)} columns drifted ({self.share:.0%}; "
            f"threshold: {share} at adjusted p < {self.p_value}){skipped}"
        )

    def summary(self) -> str:
        return f"{'DRIFT' if self.dataset_drift else 'no drift'}: {self.details()}"

    def to_json(self) -> str:
        verdict = {"drifted_columns": self.drifted, "share": self.share}
        verdict |= {"dataset_drift": self.dataset_drift, "summary": self.summary()}
        return json.dumps({**asdict(self), **verdict}, indent=2)

    def to_markdown(self, title: str = "Data drift report") -> str:
        lines = [
            f"# {title}",
            "",
            f"**{self.summary()}**",
            "",
            f"Compared: {self.compared or 'the columns given'}. Batch: {self.batch_rows} rows; "
            f"training reference: {self.reference_rows} rows. Adjusted p-value: "
            f"Benjamini-Hochberg over the {len(self.columns)} columns compared.",
            "",
            "| column | test | statistic | p-value | adjusted p-value | drifted |",
            "| --- | --- | ---: | ---: | ---: | --- |",
            *(
                f"| {c.column} | {c.test} | {c.statistic:.4f} | {c.p_value:.4g} | "
                f"{c.adjusted_p_value:.4g} | {'yes' if c.drifted else 'no'} |"
                for c in sorted(self.columns, key=lambda column: column.p_value)
            ),
        ]
        if self.skipped:
            lines += ["", "Not compared:", *(f"- {c}: {why}" for c, why in self.skipped.items())]
        return "\n".join(lines) + "\n"


def _test(reference: pd.Series, batch: pd.Series) -> tuple[str, float, float] | str:
    """(test, statistic, p-value), or why the column cannot be compared."""
    reference, batch = reference.dropna(), batch.dropna()
    if reference.empty or batch.empty:
        return f"no values in the {'reference' if reference.empty else 'batch'}"
    if all(types.is_numeric_dtype(s) and not types.is_bool_dtype(s) for s in (reference, batch)):
        result = stats.ks_2samp(reference.to_numpy(float), batch.to_numpy(float))
        return "ks", float(result.statistic), float(result.pvalue)
    reference, batch = reference.astype(str), batch.astype(str)
    shares = reference.value_counts(normalize=True).head(TOP_CATEGORIES)
    kept = shares.index[shares * min(len(reference), len(batch)) >= MIN_EXPECTED]
    if kept.empty:
        return (
            f"{reference.nunique()} distinct values in {len(reference)} reference rows, none "
            f"frequent enough to compare on {len(batch)} batch rows (an id, a timestamp?)"
        )
    # The other categories count as one: NaN (the gaps were dropped above).
    counts = [side.where(side.isin(kept)).value_counts(dropna=False) for side in (reference, batch)]
    table = pd.concat(counts, axis=1).fillna(0).to_numpy().T
    if table.shape[1] < 2:  # one category on both sides: nothing can have shifted
        return "chi-square", 0.0, 1.0
    result = stats.chi2_contingency(table)
    return "chi-square", float(result.statistic), float(result.pvalue)


def detect_drift(
    reference: pd.DataFrame,
    batch: pd.DataFrame,
    columns: list[str] | None = None,
    p_value: float = 0.05,
    drift_share: float = 0.0,
    compared: str = "",
) -> DriftReport:
    """Compare `columns` (default: the reference's) of the batch with the reference."""
    tests, skipped = {}, {}
    for column in columns or reference.columns:
        if column not in reference.columns or column not in batch.columns:
            found = f"missing in the {'batch' if column in reference.columns else 'reference'}"
        else:
            found = _test(reference[column], batch[column])
        if isinstance(found, str):
            skipped[column] = found
        else:
            tests[column] = found
    raw = np.nan_to_num([p for _, _, p in tests.values()], nan=1.0)
    adjusted = stats.false_discovery_control(raw) if len(raw) else raw
    results = [
        ColumnDrift(str(c), test, statistic, float(p), float(q), bool(q < p_value))
        for (c, (test, statistic, _)), p, q in zip(tests.items(), raw, adjusted, strict=True)
    ]
    return DriftReport(results, p_value, drift_share, len(reference), len(batch), skipped, compared)
