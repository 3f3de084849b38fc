"""Live performance: the batch predictions joined with the labels that arrive later, scored per
window and per model version, and judged against the version's held-out metrics. Plain pandas:
the step in pipelines/monitoring.py brings the held-out metrics and the drift check."""

import glob
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.exceptions import UndefinedMetricWarning

from ..config import SCHEME, MonitoringConfig
from ..errors import MonitoringDataError
from . import LOWER_IS_BETTER, improvement
from .data import load_dataset
from .metrics import classification_metrics, regression_metrics

# The verdicts, from mild to severe; the exit code of `monitor` is the latest window's.
VERDICTS = {"ok": 0, "not enough labels": 3, "drifted": 4, "degraded": 5}
# The joined rows' time as a date, beside the user's own time column (kept as it came: the
# rows may go back into training, where add_features() reads it).
DATED = "monitoring_time"
SHADOW = "challenger_"  # batch output columns of the shadow @challenger (batch_inference.shadow)


@dataclass
class Joined:
    rows: pd.DataFrame  # one row per scored key, its label (NaN: none yet) and its window
    scored: int  # prediction rows read
    labelled: int  # of them, with a label
    unknown_labels: int  # labels whose key no prediction has
    duplicate_labels: int  # further labels of a key: the last one counts
    rescored: int  # further predictions of a key: the latest one counts
    undated: int  # predictions whose time column is empty or not a date: left out

    def counts(self) -> list[str]:
        return [
            f"{self.scored:,} predictions, {self.labelled:,} of them labelled",
            f"{self.unknown_labels:,} labels for keys no prediction has",
            f"{self.duplicate_labels:,} repeated labels of a key (the last one counts)",
            f"{self.rescored:,} keys scored again (the latest prediction counts)",
            f"{self.undated:,} predictions without a valid time: left out",
        ]


def check_sources(config: MonitoringConfig) -> None:
    """The batch outputs and the labels are there (files; a query runs in the pipeline)."""
    if not SCHEME.match(config.predictions) and not glob.glob(config.predictions):
        raise MonitoringDataError(
            f"no batch output at {config.predictions}: run batch-infer first, or point "
            "`predictions` at its output"
        )
    if not SCHEME.match(config.labels) and not Path(config.labels).is_file():
        raise MonitoringDataError(f"labels file not found: {config.labels}")


def load_predictions(source: str) -> pd.DataFrame:
    """A batch output, several (a glob: outputs/predictions/*.parquet) or a `sql:` query."""
    files = glob.has_magic(source) and not SCHEME.match(source)  # not sql:SELECT * ...
    paths = sorted(glob.glob(source)) if files else [source]
    if not paths:
        raise MonitoringDataError(f"no batch output matches {source}: run batch-infer first")
    return pd.concat([load_dataset(path) for path in paths], ignore_index=True)


def window_labels(times: pd.Series, window: str | int) -> pd.Series:
    """Each row's window: its day, its week (from Monday), or its block of `window` rows in
    time order."""
    if window == "day":
        return times.dt.strftime("%Y-%m-%d")
    if window == "week":
        monday = times - pd.to_timedelta(times.dt.day_of_week, unit="D")
        return "week of " + monday.dt.strftime("%Y-%m-%d")
    position = pd.Series(np.arange(len(times)), index=times.sort_values(kind="stable").index)
    block = position.reindex(times.index) // window
    return block.map(lambda n: f"rows {n * window + 1:,}-{(n + 1) * window:,}")


def join_labels(
    predictions: pd.DataFrame, labels: pd.DataFrame, config: MonitoringConfig, target: str
) -> Joined:
    """Predictions with their labels by `config.key`; what does not join is counted."""
    key, time = config.key, config.time_column
    for frame, name, needed in ((predictions, "predictions", time), (labels, "labels", target)):
        missing = [column for column in (key, needed) if column not in frame.columns]
        if missing:
            where = config.predictions if name == "predictions" else config.labels
            raise MonitoringDataError(
                f"the {name} ({where}) have no column(s) {missing}: "
                "configs/monitoring.yaml names the key and the time column"
            )
    # Joined on the keys as text: an ID read as a number in one source and as text in another.
    labels = labels[[target]].assign(joined=_as_text(labels[key])).dropna()
    times = pd.to_datetime(predictions[time], utc=True, errors="coerce", format="mixed")
    dated = predictions[times.notna()].assign(**{DATED: times[times.notna()]})
    dated = dated.assign(joined=_as_text(dated[key]))
    latest = dated.sort_values(DATED, kind="stable").drop_duplicates("joined", keep="last")
    last_label = labels.drop_duplicates("joined", keep="last")
    rows = latest.merge(last_label, on="joined", how="left", suffixes=("_scored", ""))
    rows = rows.drop(columns="joined").assign(window=window_labels(rows[DATED], config.window))
    return Joined(
        rows=rows,
        scored=len(predictions),
        labelled=int(rows[target].notna().sum()),
        unknown_labels=int((~last_label["joined"].isin(latest["joined"])).sum()),
        duplicate_labels=len(labels) - len(last_label),
        rescored=len(dated) - len(latest),
        undated=len(predictions) - len(dated),
    )


def _as_text(values: pd.Series) -> pd.Series:
    """Labels, keys and versions as text, so 1, 1.0 and "1" (CSV, Parquet, a column name) are
    one value."""
    return values.astype(str).str.replace(r"^(-?\d+)\.0$", r"\1", regex=True)


def live_metrics(
    rows: pd.DataFrame, target: str, task: str, average: str = "macro", prefix: str = ""
) -> dict[str, float]:
    """The task's metrics (ml/metrics.py) of the answers a batch output holds: `prediction`,
    and for classifiers one `probability_<label>` column per class (`prefix`: the shadow's)."""
    if task == "regression":
        return regression_metrics(rows[target], rows[f"{prefix}prediction"])
    columns = [c for c in rows.columns if c.startswith(f"{prefix}probability_")]
    classes = list(_as_text(pd.Series([c.removeprefix(f"{prefix}probability_") for c in columns])))
    y_true, y_pred = _as_text(rows[target]), _as_text(rows[f"{prefix}prediction"])
    probabilities = rows[columns].to_numpy(dtype=float)
    with warnings.catch_warnings():  # a class without labels in the window: nan, said in checks
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        return classification_metrics(y_true, y_pred, probabilities, classes, average)


def window_checks(
    live: dict[str, float],
    held_out: dict[str, float],
    max_drop: dict[str, float],
    min_metrics: dict[str, float],
    max_metrics: dict[str, float],
) -> list[tuple[str, bool | None]]:
    """(line, passed): each live metric against the version's held-out value (max_drop) and
    the absolute thresholds of `promotion:`. A metric the window's labels cannot define (a
    multi-class roc_auc when a class has no label there) is said so, not judged (None)."""
    named = {*max_drop, *min_metrics, *max_metrics}
    undefined = sorted(name for name in named if np.isnan(live[name]))
    checks = [(f"{name}: not defined on these labels", None) for name in undefined]
    max_drop, min_metrics, max_metrics = (
        {name: value for name, value in limits.items() if name not in undefined}
        for limits in (max_drop, min_metrics, max_metrics)
    )
    for name, allowed in max_drop.items():
        if name not in held_out:
            checks.append((f"{name}: no held-out value logged for this version", True))
            continue
        gain = improvement(name, live[name], held_out[name])
        worse = "rise" if name in LOWER_IS_BETTER else "drop"
        line = f"{name} {live[name]:.4f} live vs {held_out[name]:.4f} held-out ({gain:+.4f})"
        checks.append((f"{line}, allows a {worse} of {allowed:.4f}", gain >= -allowed))
    for name, minimum in min_metrics.items():
        checks.append((f"{name} {live[name]:.4f}, needs >= {minimum:.4f}", live[name] >= minimum))
    for name, maximum in max_metrics.items():
        checks.append((f"{name} {live[name]:.4f}, needs <= {maximum:.4f}", live[name] <= maximum))
    said = {True: "ok", False: "FAILED", None: "not judged"}
    return [(f"{line}: {said[ok]}", ok) for line, ok in checks]


@dataclass
class WindowResult:
    window: str
    version: str
    role: str  # served (the model_version column) or shadow (challenger_version)
    start: pd.Timestamp
    scored: int
    labelled: int
    verdict: str
    metrics: dict[str, float] = field(default_factory=dict)  # live, when enough labels
    held_out: dict[str, float] = field(default_factory=dict)
    checks: list[str] = field(default_factory=list)
    drift: str = "-"
    drift_share: float | None = None

    def row(self) -> dict:
        return {
            "window": self.window,
            "version": self.version,
            "role": self.role,
            "scored": self.scored,
            "labelled": self.labelled,
            "verdict": self.verdict,
            **{name: None if np.isnan(value) else value for name, value in self.metrics.items()},
            "drift_share": self.drift_share,
        }


def judge_windows(
    joined: Joined,
    config: MonitoringConfig,
    task: str,
    target: str,
    held_out_of: Callable[[str], dict[str, float]],
    drift_of: Callable[[str, pd.DataFrame], tuple[str, float, bool] | None],
    thresholds: tuple[dict[str, float], dict[str, float]] = ({}, {}),
    average: str = "macro",
) -> list[WindowResult]:
    """A verdict per window and version, oldest window first: degraded (a check failed),
    drifted (the inputs moved from the version's training data), not enough labels, or ok."""
    results, rows = [], joined.rows
    roles = [("served", "model_version", "")]
    if f"{SHADOW}version" in rows.columns:
        roles.append(("shadow", f"{SHADOW}version", SHADOW))
    for window, in_window in rows.groupby("window", sort=False):
        for role, column, prefix in roles:
            for version, scored in in_window.groupby(_as_text(in_window[column])):
                if version in ("", "nan", "<NA>", "None"):
                    continue
                labelled = scored[scored[target].notna()]
                result = WindowResult(
                    str(window), version, role, scored[DATED].min(),
                    len(scored), len(labelled), "ok",
                )  # fmt: skip
                found = drift_of(version, scored)
                if found is not None:
                    result.drift, result.drift_share, drifted = found
                    result.verdict = "drifted" if drifted else "ok"
                classes = _as_text(labelled[target]).nunique()
                if len(labelled) < config.min_labels or (task != "regression" and classes < 2):
                    if result.verdict == "ok":
                        result.verdict = "not enough labels"
                    result.checks = [
                        f"{len(labelled)} labelled rows, {classes} distinct, needs "
                        f"{config.min_labels}" + ("" if task == "regression" else " and 2 classes")
                    ]
                    results.append(result)
                    continue
                result.metrics = live_metrics(labelled, target, task, average, prefix)
                result.held_out = held_out_of(version)
                checks = window_checks(
                    result.metrics, result.held_out, config.max_drop, *thresholds
                )
                result.checks = [line for line, _ in checks]
                if any(ok is False for _, ok in checks):
                    result.verdict = "degraded"
                elif result.verdict == "ok" and checks and all(ok is None for _, ok in checks):
                    result.verdict = "not enough labels"  # none of its metrics is defined
                results.append(result)
    return sorted(results, key=lambda r: (r.start, r.role != "served"))


def current(results: list[WindowResult], champion: str | None) -> WindowResult | None:
    """What `monitor` answers for: the champion's latest window with a metrics verdict (else
    its latest window); a later window that drifted makes it `drifted` unless degraded."""
    served = [r for r in results if r.version == champion and r.role == "served"]
    judged = [r for r in served if r.metrics] or served
    if not judged:
        return None
    latest = judged[-1]
    later = [r for r in served if r.start > latest.start and r.verdict == "drifted"]
    if later and latest.verdict != "degraded":
        return later[-1]
    return latest


def labelled_rows(joined: Joined, target: str, window: str | None = None) -> pd.DataFrame:
    """The rows with a label (of one window), as the model saw them, with the label."""
    rows = joined.rows[joined.rows[target].notna()]
    return rows if window is None else rows[rows["window"] == window]


def latest_labelled_window(joined: Joined, target: str, min_labels: int) -> str | None:
    """The newest window with at least `min_labels` labelled rows."""
    rows = labelled_rows(joined, target)
    starts = rows.groupby("window")[DATED].min()[rows.groupby("window").size() >= min_labels]
    return str(starts.idxmax()) if len(starts) else None


def retraining_data(training: pd.DataFrame, labelled: pd.DataFrame) -> pd.DataFrame:
    """The training rows plus the labelled rows, in the training data's columns (a column the
    batch output lacks, e.g. one left out of the features, is empty for them)."""
    added = labelled.reindex(columns=training.columns).astype(training.dtypes, errors="ignore")
    return pd.concat([training, added], ignore_index=True)


def to_markdown(results: list[WindowResult], joined: Joined, verdict: str, title: str) -> str:
    """The monitoring report: the verdict, what joined and what did not, one row per window
    and version, then each window's checks."""
    names = sorted({name for r in results for name in r.metrics})
    header = ["window", "version", "role", "scored", "labelled", *names, "drift", "verdict"]
    lines = [f"# {title}", "", f"**Verdict: {verdict}**", "", *(f"- {c}" for c in joined.counts())]
    lines += ["", "| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for r in results:
        values = [f"{r.metrics[n]:.4f}" if n in r.metrics else "-" for n in names]
        share = "-" if r.drift_share is None else f"{r.drift_share:.0%}"
        row = [r.window, f"v{r.version}", r.role, f"{r.scored:,}", f"{r.labelled:,}", *values]
        lines.append("| " + " | ".join([*row, share, r.verdict]) + " |")
    for r in results:
        lines += ["", f"## {r.window}, v{r.version} ({r.role}): {r.verdict}", ""]
        lines += [f"- {check}" for check in r.checks] + [f"- drift: {r.drift}"]
    return "\n".join(lines) + "\n"
