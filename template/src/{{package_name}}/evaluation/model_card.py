"""The model card: one Markdown page per registered version, written when the gate runs.

Plain functions: the facts come in as values, the page comes out as text.
"""

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import yaml

from . import METRIC_NAMES

MAX_LISTED_FEATURES = 12


def _class_balance(labels: pd.Series) -> str:
    shares = labels.value_counts(normalize=True).sort_index()
    return ", ".join(f"{label}: {share:.1%}" for label, share in shares.items())


def data_summary(train_set: pd.DataFrame, test_set: pd.DataFrame, target: str, source: str) -> dict:
    """What the model learned from and was judged on."""
    features = [column for column in train_set.columns if column != target]
    numeric = train_set[features].select_dtypes("number").columns
    return {
        "source": source,
        "target": target,
        "features": features,
        "numeric_features": len(numeric),
        "categorical_features": len(features) - len(numeric),
        "splits": {
            name: {"rows": len(frame), "class_balance": _class_balance(frame[target])}
            for name, frame in (("training", train_set), ("held-out", test_set))
        },
    }


def template_version(project_root: Path) -> str:
    """The template release this project was generated or last updated from (Copier's
    answers file), or "unknown"."""
    answers = project_root / ".copier-answers.yml"
    try:
        return str(yaml.safe_load(answers.read_text()).get("_commit") or "unknown")
    except (OSError, yaml.YAMLError, AttributeError):
        return "unknown"


def _number(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def _metrics_table(
    metrics: dict[str, float],
    min_metrics: dict[str, float],
    min_improvement: dict[str, float],
    champion: tuple[str, dict[str, float]] | None,
) -> list[str]:
    champion_label = f"champion v{champion[0]}" if champion else "champion"
    lines = [
        f"| metric | this version | minimum | {champion_label} | gain | gain needed |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in METRIC_NAMES:
        theirs = champion[1].get(name) if champion else None
        gain = metrics[name] - theirs if theirs is not None else None
        cells = [
            _number(metrics[name]),
            _number(min_metrics.get(name)),
            _number(theirs),
            _number(gain, signed=True),
            _number(min_improvement.get(name), signed=True),
        ]
        lines.append(f"| {name} | {' | '.join(cells)} |")
    return lines


def render_model_card(
    name: str,
    version: str,
    verdict: dict,
    metrics: dict[str, float],
    min_metrics: dict[str, float],
    min_improvement: dict[str, float],
    champion: tuple[str, dict[str, float]] | None,
    data: dict,
    params: dict[str, str],
    plots: Sequence[str],
    lineage: dict[str, str],
) -> str:
    """The card as Markdown. `verdict` is the gate's (Verdict.as_dict()), `champion` the
    version it was compared with and that version's metrics on the same held-out data,
    `plots` paths relative to the card, `lineage` label -> value."""
    features = data["features"]
    listed = ", ".join(f"`{f}`" for f in features[:MAX_LISTED_FEATURES])
    if len(features) > MAX_LISTED_FEATURES:
        listed += f" and {len(features) - MAX_LISTED_FEATURES} more"
    lines = [
        f"# Model card: {name} v{version}",
        "",
        f"**Gate verdict: {verdict['result']}** (mode `{verdict['mode']}`)",
        "",
        "## Data",
        "",
        f"- source: `{data['source']}`, target column `{data['target']}`",
        f"- {len(features)} features ({data['numeric_features']} numeric, "
        f"{data['categorical_features']} categorical): {listed}",
        "",
        "| split | rows | class balance |",
        "| --- | ---: | --- |",
        *(
            f"| {split} | {facts['rows']} | {facts['class_balance']} |"
            for split, facts in data["splits"].items()
        ),
        "",
        "## Metrics on the held-out split, against the gate's thresholds and the champion",
        "",
        *_metrics_table(metrics, min_metrics, min_improvement, champion),
        "",
        "## Validation gate",
        "",
        *(f"- {check}" for check in verdict["checks"]),
        "",
        "## Parameters of the training run",
        "",
        *(f"- `{key}`: {value}" for key, value in sorted(params.items())),
        "",
        "## Plots",
        "",
        *(f"![{Path(path).stem.replace('_', ' ')}]({path})" for path in plots),
        "",
        "## Lineage",
        "",
        "| | |",
        "| --- | --- |",
        *(f"| {label} | {value} |" for label, value in lineage.items()),
        "",
    ]
    return "\n".join(lines)
