"""The validation gate: may a challenger replace the champion? `judge` is pure logic;
`run_gate` scores the champion on the same held-out data and moves the aliases."""

import pandas as pd
from mlflow import MlflowClient
from pydantic import BaseModel, Field, computed_field

from ..config import PromotionConfig
from ..ml.metrics import evaluate_classifier
from ..ml.model import as_classifier, load_model
from .aliases import CHALLENGER, CHAMPION, set_alias, set_champion, version_by_alias


class Verdict(BaseModel):
    """The gate's decision on one registered version."""

    model_name: str = ""
    version: str = ""
    mode: str  # disabled | dry_run | enforce | forced
    passed: bool  # every threshold met
    promote: bool  # the champion alias moves to this version
    checks: list[str] = Field(default_factory=list)  # "ok: ..." / "FAILED: ..." lines
    metrics: dict[str, float] = Field(default_factory=dict)  # this version, held-out split
    # The champion it was compared with, scored on the same held-out data (none at first).
    champion_version: str | None = None
    champion_metrics: dict[str, float] = Field(default_factory=dict)
    model_card: str | None = None  # the card's URI, once published

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


def _checks(
    promotion: PromotionConfig, challenger: dict[str, float], champion: dict[str, float] | None
) -> list[str]:
    """One "ok: ..." or "FAILED: ..." line per threshold."""
    checks = []
    for name, minimum in promotion.min_metrics.items():
        ok = challenger[name] >= minimum
        checks.append(f"{'ok' if ok else 'FAILED'}: {name} {challenger[name]:.4f} >= {minimum:.4f}")
    if champion is None:
        return [*checks, "ok: no champion yet, so no comparison"]
    for name, needed in promotion.min_improvement.items():
        gain = challenger[name] - champion[name]
        checks.append(
            f"{'ok' if gain >= needed else 'FAILED'}: {name} {challenger[name]:.4f} vs "
            f"champion {champion[name]:.4f} ({gain:+.4f}, needs {needed:+.4f})"
        )
    return checks


def judge(
    promotion: PromotionConfig,
    challenger: dict[str, float],
    champion: tuple[str, dict[str, float]] | None = None,
    forced: bool = False,
) -> Verdict:
    """Apply the thresholds in `promotion:` to held-out metrics. `champion` is (version,
    its metrics on the same data), or None when there is none yet: then only the absolute
    minimums apply. In dry_run the verdict is reported and the challenger promoted anyway."""
    mode = "forced" if forced else promotion.mode
    if mode in ("disabled", "forced"):
        checks = [f"gate skipped ({mode})"]
    else:
        checks = _checks(promotion, challenger, champion[1] if champion else None)
    passed = not any(check.startswith("FAILED") for check in checks)
    return Verdict(
        mode=mode,
        passed=passed,
        promote=passed or mode == "dry_run",
        checks=checks,
        metrics=challenger,
        champion_version=champion[0] if champion else None,
        champion_metrics=champion[1] if champion else {},
    )


def held_out_scorer(test_set: pd.DataFrame, target: str, labels: list):
    """Score any registered version (`model_uri -> metrics`) on exactly this held-out data."""
    features, y = test_set.drop(columns=[target]), test_set[target]

    def score(model_uri: str) -> dict[str, float]:
        return evaluate_classifier(as_classifier(load_model(model_uri), labels), features, y)

    return score


def run_gate(
    client: MlflowClient,
    name: str,
    version: str,
    metrics: dict[str, float],
    score,
    promotion: PromotionConfig,
    forced: bool = False,
    mark_challenger: bool = True,
) -> Verdict:
    """Judge `version` against the current champion (scored by `score(model_uri)`), then
    move the aliases: `challenger` to this version, `champion` if it passes."""
    version = str(version)
    if mark_challenger:
        set_alias(client, name, CHALLENGER, version)
    current = version_by_alias(client, name, CHAMPION)
    champion = None
    if current and str(current.version) != version:  # int from sqlite stores, str over REST
        champion = (str(current.version), score(f"models:/{name}/{current.version}"))
    verdict = judge(promotion, metrics, champion, forced)
    verdict.model_name, verdict.version = name, version
    if verdict.promote:
        set_champion(client, name, version)
    return verdict
