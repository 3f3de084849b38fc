# Template's: kept current by `copier update`; change it through configs/ and CUSTOMIZE files.
"""The model card: one Markdown page per registered version, written when the gate runs,
stored in the version's MLflow run, linked from the version (tag `model_card`), and summed up
in the version's description."""

from collections.abc import Sequence
from pathlib import Path

import mlflow
import pandas as pd
import yaml
from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.entities.model_registry import ModelVersion

from ..config import DataConfig, PromotionConfig, find_project_root
from ..ml import improvement
from ..ml.data import listed
from ..ml.features import model_features
from ..ml.metrics import LOWER_IS_BETTER, METRICS
from ..ml.plots import PLOT_NAMES, PLOTS_FOLDER, plots_note
from .gate import Verdict, run_gate
from .registration import PIPELINE_RUN_TAG, ZENML_VERSION_TAG

CARD_ARTIFACT = "model_card.md"
CARD_TAG = "model_card"
MAX_LISTED_FEATURES = 12


def _target_summary(y: pd.Series, task: str) -> str:
    """Classification: each class's share; regression: the target's spread."""
    if task == "regression":
        return f"mean {y.mean():.4g}, std {y.std():.4g}, min {y.min():.4g}, max {y.max():.4g}"
    shares = y.value_counts(normalize=True).sort_index()
    return ", ".join(f"{label}: {share:.1%}" for label, share in shares.items())


def data_summary(
    train_set: pd.DataFrame, test_set: pd.DataFrame, data: DataConfig, model=None
) -> tuple[list[str], str]:
    """The card's Data section, and what its plots show: what the model learned from and was
    judged on, the raw inputs and the features its own add_features() makes of them (`model`,
    when given); `train_set` is the whole training split, of which `data.sample_rows` (when
    set) were trained on."""
    head = train_set.drop(columns=[data.target]).head(100)
    seen = head if model is None else model_features(model, head)
    inputs, features = [str(c) for c in head.columns], [str(c) for c in seen.columns]
    numeric = len(seen.select_dtypes("number").columns)
    trained = min(data.sample_rows or len(train_set), len(train_set))
    made = "" if inputs == features else " made by add_features()"
    sample = "" if trained == len(train_set) else f"{trained:,} of {len(train_set):,} rows"
    balance = "class balance" if data.task == "classification" else "target"
    splits = [
        f"| {name} | {len(rows)} | {_target_summary(rows[data.target], data.task)} |"
        for name, rows in (("training", train_set), ("held-out", test_set))
    ]
    lines = [
        f"- source: `{data.source}`, target column `{data.target}` ({data.task})",
        *([f"- {len(inputs)} raw inputs: {_names(inputs)}"] if made else []),
        f"- {len(features)} features{made} ({numeric} numeric, "
        f"{len(features) - numeric} categorical): {_names(features)}",
        *([f"- trained on a sample of {sample} (`data.sample_rows`)"] if sample else []),
        "",
        f"| split | rows | {balance} |",
        "| --- | ---: | --- |",
        *splits,
    ]
    return lines, plots_note(len(test_set))


def _names(columns: list[str]) -> str:
    return listed([f"`{column}`" for column in columns], MAX_LISTED_FEATURES)


def template_version(project_root: Path) -> str:
    """The template release this project was generated or last updated from (Copier's
    answers file), or "unknown"."""
    answers = project_root / ".copier-answers.yml"
    try:
        return str(yaml.safe_load(answers.read_text()).get("_commit") or "unknown")
    except (OSError, yaml.YAMLError, AttributeError):
        return "unknown"


def _number(value: float | None, spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec)


def _metrics_table(verdict: Verdict, promotion: PromotionConfig) -> list[str]:
    """Each metric beside the naive baseline's, the thresholds (absolute; a gain over the
    baseline) and the champion's."""
    champion = verdict.champion_metrics if verdict.champion_version else {}
    champion_label = f"champion v{verdict.champion_version}" if champion else "champion"
    lines = [
        f"| metric | this version | baseline | threshold | {champion_label} | better by | needed |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    known = (*METRICS["classification"], *METRICS["regression"])
    for name in (name for name in known if name in verdict.metrics):
        theirs = champion.get(name)
        gain = None if theirs is None else improvement(name, verdict.metrics[name], theirs)
        error = name in LOWER_IS_BETTER
        threshold = (promotion.max_metrics if error else promotion.min_metrics).get(name)
        bounds = [] if threshold is None else [f"{'≤' if error else '≥'} {_number(threshold)}"]
        margin = promotion.min_gain_over_baseline.get(name)
        bounds += [] if margin is None else [f"baseline {_number(margin, '+.4f')}"]
        cells = [
            _number(verdict.metrics[name]),
            _number(verdict.baseline_metrics.get(name)),
            ", ".join(bounds) or "-",
            _number(theirs),
            _number(gain, "+.4f"),
            _number(promotion.min_improvement.get(name), "+.4f"),
        ]
        lines.append(f"| {name} | {' | '.join(cells)} |")
    return lines


def render_model_card(
    verdict: Verdict,
    promotion: PromotionConfig,
    data: tuple[list[str], str],
    params: dict[str, str],
    plots: Sequence[str],
    lineage: dict[str, str],
) -> str:
    """The card as Markdown: `data` from data_summary, `plots` paths relative to the card,
    `lineage` label -> value."""
    data_lines, note = data
    sections = {
        "Data": data_lines,
        "Metrics on the held-out split, beside the baseline, the thresholds and the champion": (
            _metrics_table(verdict, promotion)
        ),
        "Validation gate": [f"- {check}" for check in verdict.checks],
        # Autologged: the encoding's (inputs__*) and multi-line ones are left to the run.
        "Parameters of the training run": [
            f"- `{key}`: {value}"
            for key, value in sorted(params.items())
            if "\n" not in value and not key.startswith("inputs")
        ],
        "Plots": [
            *([f"{note.capitalize()}; the metrics use every row.", ""] if note else []),
            *(f"![{Path(path).stem.replace('_', ' ')}]({path})" for path in plots),
        ],
        "Lineage": ["| | |", "| --- | --- |", *(f"| {k} | {v} |" for k, v in lineage.items())],
    }
    lines = [
        f"# Model card: {verdict.model_name} v{verdict.version}",
        "",
        f"**Gate verdict: {verdict.result}** (mode `{verdict.mode}`)",
        "",
        *([f"**Trained because** {verdict.reason}", ""] if verdict.reason else []),
    ]
    for title, body in sections.items():
        lines += [f"## {title}", "", *body, ""]
    return "\n".join(lines)


def _plots(client: MlflowClient, run_id: str) -> list[str]:
    """The run's plots, in the order of PLOT_NAMES (confusion matrix first)."""
    paths = [artifact.path for artifact in client.list_artifacts(run_id, PLOTS_FOLDER)]
    order = {f"{PLOTS_FOLDER}/{name}.png": index for index, name in enumerate(PLOT_NAMES)}
    return sorted(paths, key=lambda path: order.get(path, len(order)))


def _lineage(found: ModelVersion, run: Run, context: dict[str, str]) -> dict[str, str]:
    from ..platform.tracker import run_link

    return {
        "registered model": f"{found.name} v{found.version}",
        "ZenML pipeline run": found.tags.get(PIPELINE_RUN_TAG, "-"),
        "ZenML model version": f"{found.name} {found.tags.get(ZENML_VERSION_TAG, '-')}",
        "MLflow run": run_link(mlflow.get_tracking_uri(), run.info.experiment_id, found.run_id),
        "git commit": context.get("git_commit", "none (not a git checkout)"),
        "template version": template_version(find_project_root()),
        "gate run": f"{context['time']} by {context['user']}",
    }


def write_model_card(
    client: MlflowClient,
    verdict: Verdict,
    promotion: PromotionConfig,
    data: tuple[list[str], str],
    context: dict[str, str],
) -> str:
    """Render the version's card from the verdict and its MLflow run (plots, parameters),
    store it in the run, and put the verdict in the version's description; returns the card
    (its URI is then `verdict.model_card`)."""
    name, version = verdict.model_name, verdict.version
    found = client.get_model_version(name, version)
    run = client.get_run(found.run_id)
    plots, lineage = _plots(client, found.run_id), _lineage(found, run, context)
    card = render_model_card(verdict, promotion, data, run.data.params, plots, lineage)
    client.log_text(found.run_id, card, CARD_ARTIFACT)
    verdict.model_card = f"runs:/{found.run_id}/{CARD_ARTIFACT}"
    client.set_model_version_tag(name, version, CARD_TAG, verdict.model_card)
    client.set_model_version_tag(name, version, "gate", verdict.result)
    trained = (found.description or "").split("\n\n")[0]
    who = f"Gate run {context['time']} by {context['user']}."
    description = f"{trained}\n\n{verdict.summary()}\n\n{who} Model card: {verdict.model_card}"
    client.update_model_version(name, version, description.strip())
    return card


def gate_with_card(
    client: MlflowClient, context: dict[str, str], *gate, reason: str = "", **options
) -> tuple[Verdict, str]:
    """run_gate(client, *gate, **options), `gate` being the version's name, number, metrics,
    held-out data and promotion config; then its model card (`reason`: why it was trained)."""
    verdict = run_gate(client, *gate, **options)
    verdict.reason = reason
    name, version, _, held_out, promotion = gate
    model = held_out.model(f"models:/{name}/{version}")  # the gate's copy, if it loaded one
    summary = data_summary(*held_out.splits, held_out.data, model)
    return verdict, write_model_card(client, verdict, promotion, summary, context)
