"""The validation gate: may a challenger replace the champion? `judge` is pure logic;
`run_gate` checks that both solve the same problem, scores the champion on the same held-out
data (beside a naive baseline fitted on the training split) and moves the aliases."""

import math

import pandas as pd
from mlflow import MlflowClient
from pydantic import BaseModel, Field, computed_field
from sklearn.base import is_classifier

from ..config import DataConfig, PromotionConfig
from ..ml import METRICS, improvement
from ..ml.metrics import baseline_metrics, evaluate
from ..ml.model import load_model
from .aliases import CHALLENGER, CHAMPION, set_alias, set_champion, version_by_alias


class Verdict(BaseModel):
    """The gate's decision on one registered version."""

    model_name: str = ""
    version: str = ""
    mode: str  # disabled | dry_run | enforce | forced
    passed: bool  # every threshold met
    promote: bool  # the champion alias moves to this version
    checks: list[str] = Field(default_factory=list)  # "...: ok" / "...: FAILED" lines
    metrics: dict[str, float] = Field(default_factory=dict)  # this version, held-out split
    # The naive baseline (class shares, or the training mean), on the same held-out split.
    baseline_metrics: dict[str, float] = Field(default_factory=dict)
    # The champion it was compared with, scored on the same held-out data (none at first).
    champion_version: str | None = None
    champion_metrics: dict[str, float] = Field(default_factory=dict)
    # How this version's problem differs from the champion's (task, labels, input columns).
    schema_changes: list[str] = Field(default_factory=list)
    model_card: str | None = None  # the card's URI, once published
    reason: str = ""  # why it was trained, when monitoring asked for it

    @computed_field
    @property
    def result(self) -> str:
        if self.mode in ("disabled", "forced"):
            return f"promoted ({self.mode})"
        if self.mode == "dry_run":
            return "promoted (dry run: passed)" if self.passed else "promoted (dry run: would fail)"
        return "promoted" if self.promote else "rejected"

    def summary(self) -> str:
        """The verdict as the version's description shows it in MLflow's UI."""
        checks = "\n".join(f"- {check}" for check in self.checks)
        return f"Validation gate ({self.mode}): {self.result}.\n{checks}"


def _check(text: str, ok: bool) -> tuple[str, bool]:
    return f"{text}: {'ok' if ok else 'FAILED'}", ok


def _versus(
    name: str, value: float, other: float, text: str, needed: float, where: str = ""
) -> tuple[str, bool]:
    gain = improvement(name, value, other)
    line = f"{name}{where} {value:.4f} vs {text}: {gain:+.4f} better, needs {needed:+.4f}"
    return _check(line, gain >= needed)


def _checks(
    promotion: PromotionConfig,
    challenger: dict[str, float],
    champion: tuple[str, dict[str, float]] | None,
    baseline: dict[str, float],
    no_champion: str = "no champion to compare with",
    live: tuple[str, dict[str, float], dict[str, float]] | None = None,
) -> list[tuple[str, bool]]:
    """One (line, passed) per check; a line says the value, what it needs, then ok/FAILED."""
    checks = []
    for name, minimum in promotion.min_metrics.items():
        value = challenger[name]
        checks.append(_check(f"{name} {value:.4f}, needs >= {minimum:.4f}", value >= minimum))
    for name, maximum in promotion.max_metrics.items():
        value = challenger[name]
        checks.append(_check(f"{name} {value:.4f}, needs <= {maximum:.4f}", value <= maximum))
    for name, needed in promotion.min_gain_over_baseline.items():
        naive = "the training mean" if name in METRICS["regression"] else "the class shares"
        theirs = baseline[name]
        text = f"baseline {theirs:.4f} ({naive})"
        checks.append(_versus(name, challenger[name], theirs, text, needed))
    if champion is None:
        return [*checks, _check(no_champion, True)]
    version, scores = champion
    for name, needed in promotion.min_improvement.items():
        if scores:  # on the held-out split (not when live evidence replaces it)
            text = f"champion v{version} {scores[name]:.4f}"
            checks.append(_versus(name, challenger[name], scores[name], text, needed))
        if live:  # both on the labelled rows of a monitored window
            window, ours, theirs = live
            if math.isnan(ours[name] + theirs[name]):  # e.g. roc_auc, a class without labels
                checks.append((f"{name} on {window}: not defined on its labels, not judged", True))
                continue
            text = f"champion v{version} {theirs[name]:.4f} on {window}"
            where = f" on {window}"
            checks.append(_versus(name, ours[name], theirs[name], text, needed, where))
    return checks


def judge(
    promotion: PromotionConfig,
    challenger: dict[str, float],
    champion: tuple[str, dict[str, float]] | None = None,
    forced: bool = False,
    schema_changes: list[str] | None = None,
    baseline: dict[str, float] | None = None,
    live: tuple[str, dict[str, float], dict[str, float]] | None = None,
) -> Verdict:
    """Apply the thresholds in `promotion:` to held-out metrics. `champion` is (version,
    its metrics on the same data), or None when there is none yet (or it solves another
    problem): then only the absolute and baseline thresholds apply; `baseline` is the naive
    model's metrics on the same data (ml.metrics.baseline_metrics); `live`: (window, this
    version's metrics, the champion's) on a monitored window's labelled rows. In dry_run the
    verdict is reported and the challenger promoted anyway. A changed problem (`schema_changes`)
    is never promoted unless forced or allowed (promotion.allow_schema_change)."""
    mode = "forced" if forced else promotion.mode
    changes, baseline = list(schema_changes or []), baseline or {}
    if mode in ("disabled", "forced"):
        checks = [(f"gate skipped ({mode})", True)]
    elif changes:  # the champion solves another problem: the thresholds only
        unlike = "not compared with the champion, which solves another problem"
        checks = _checks(promotion, challenger, None, baseline, no_champion=unlike)
    else:
        checks = _checks(promotion, challenger, champion, baseline, live=live)
    allowed = forced or promotion.allow_schema_change
    if changes:
        needs = "needs promotion.allow_schema_change or promote --force"
        changed = f"the problem changed since the champion ({'; '.join(changes)}), {needs}"
        checks.append(_check(changed, allowed))
    passed = all(ok for _, ok in checks)
    blocked = bool(changes) and not allowed
    return Verdict(
        mode=mode,
        passed=passed,
        promote=passed or (mode in ("dry_run", "disabled") and not blocked),
        checks=[line for line, _ in checks],
        metrics=challenger,
        baseline_metrics=baseline,
        champion_version=champion[0] if champion else None,
        champion_metrics=champion[1] if champion and not changes else {},
        schema_changes=changes,
    )


def problem_of(model) -> dict:
    """What a fitted model solves: its task, its classes and the raw columns it takes."""
    classifier = is_classifier(model)
    return {
        "task": "classification" if classifier else "regression",
        "labels": [str(label) for label in model.classes_] if classifier else [],
        "inputs": [str(column) for column in getattr(model, "feature_names_in_", [])],
    }


def schema_changes(new: dict, old: dict) -> list[str]:
    """How `new`'s problem differs from `old`'s, one phrase per difference."""
    changes = []
    if new["task"] != old["task"]:
        changes.append(f"task {old['task']} -> {new['task']}")
    elif new["labels"] != old["labels"]:
        changes.append(f"labels {old['labels']} -> {new['labels']}")
    added = [column for column in new["inputs"] if column not in old["inputs"]]
    removed = [column for column in old["inputs"] if column not in new["inputs"]]
    if added or removed:
        changes.append(f"input columns added {added}, removed {removed}")
    return changes


class HeldOut:
    """The held-out split every version is judged on (models loaded once per URI), and the
    naive baseline's metrics on it (fitted on the training split)."""

    def __init__(self, train_set: pd.DataFrame, test_set: pd.DataFrame, data: DataConfig) -> None:
        self.features, self.y = test_set.drop(columns=[data.target]), test_set[data.target]
        self.data = data
        self.baseline = baseline_metrics(train_set[data.target], self.y, data.task, data.average)
        self._models: dict[str, object] = {}

    def model(self, model_uri: str):
        if model_uri not in self._models:
            self._models[model_uri] = load_model(model_uri)
        return self._models[model_uri]

    def score(self, model_uri: str) -> dict[str, float]:
        model = self.model(model_uri)
        return evaluate(model, self.features, self.y, self.data.task, self.data.average)

    def problem(self, model_uri: str) -> dict:
        return problem_of(self.model(model_uri))


def _compared(held_out: HeldOut, candidate: str, champion: str) -> tuple[dict | None, list[str]]:
    """The champion's metrics on the held-out data, or the reasons it cannot be compared."""
    try:
        old = held_out.problem(champion)
    except Exception as error:  # e.g. logged by an older template whose classes are gone
        version = champion.rsplit("/", 1)[-1]
        return None, [f"champion v{version} does not load with this code ({type(error).__name__})"]
    changes = schema_changes(held_out.problem(candidate), old)
    return (None, changes) if changes else (held_out.score(champion), [])


def run_gate(
    client: MlflowClient,
    name: str,
    version: str,
    metrics: dict[str, float],
    held_out: HeldOut,
    promotion: PromotionConfig,
    forced: bool = False,
    mark_challenger: bool = True,
    evidence: tuple[str, HeldOut] | None = None,
    live_only: bool = False,
) -> Verdict:
    """Judge `version` against the current champion (both on `held_out`, and on `evidence`:
    a monitored window's labelled rows), then move the aliases: `challenger` to this version,
    `champion` if it passes. `live_only`: the champion is compared on the evidence alone."""
    version = str(version)
    if mark_challenger:
        set_alias(client, name, CHALLENGER, version)
    current = version_by_alias(client, name, CHAMPION)
    champion, changes, live = None, [], None
    if current and str(current.version) != version:  # int from sqlite stores, str over REST
        champion_uri = f"models:/{name}/{current.version}"
        candidate_uri = f"models:/{name}/{version}"
        scores, changes = _compared(held_out, candidate_uri, champion_uri)
        champion = (str(current.version), {} if live_only else scores or {})
        if evidence is not None and not changes:
            window, rows = evidence
            live = (window, rows.score(candidate_uri), rows.score(champion_uri))
    verdict = judge(promotion, metrics, champion, forced, changes, held_out.baseline, live)
    verdict.model_name, verdict.version = name, version
    if verdict.promote:
        set_champion(client, name, version)
    return verdict
