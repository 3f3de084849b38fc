# Template's: kept current by `copier update`; change it through configs/ and CUSTOMIZE files.
"""Machine learning in plain pandas, scikit-learn and Keras: no ZenML, no MLflow registry."""

TASKS = ("classification", "regression")


def csv_delimiter(header: str) -> str:
    """The delimiter a CSV header line holds most of (`,` `;` tab `|`); a tie or none: a comma.
    Here, not in ml/sources.py, so that `predict` reads CSV files without importing pandas."""
    first, second = sorted(",;\t|", key=header.count, reverse=True)[:2]
    return first if header.count(first) > header.count(second) else ","


def improvement(metric: str, new: float, old: float) -> float:
    """How much better `new` is than `old`: positive is better, for errors and scores alike."""
    from .metrics import LOWER_IS_BETTER

    return old - new if metric in LOWER_IS_BETTER else new - old
