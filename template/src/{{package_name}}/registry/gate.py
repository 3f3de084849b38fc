"""The validation gate: may a challenger replace the champion? Pure logic, no MLflow calls."""

from dataclasses import asdict, dataclass, field


@dataclass
class Verdict:
    mode: str  # disabled | dry_run | enforce | forced
    passed: bool  # every threshold met
    promote: bool  # the champion alias moves to the challenger
    checks: list[str] = field(default_factory=list)  # "ok: ..." / "FAILED: ..." lines
    # The champion it was compared with, scored on the same held-out data (none at first).
    champion_version: str | None = None
    champion_metrics: dict[str, float] = field(default_factory=dict)

    @property
    def result(self) -> str:
        if self.mode in ("disabled", "forced"):
            return f"promoted ({self.mode})"
        if self.mode == "dry_run":
            return "promoted (dry run: passed)" if self.passed else "promoted (dry run: would fail)"
        return "promoted" if self.promote else "rejected"

    def as_dict(self) -> dict:
        return {**asdict(self), "result": self.result}


def judge(
    mode: str,
    challenger: dict[str, float],
    champion: dict[str, float] | None,
    min_metrics: dict[str, float],
    min_improvement: dict[str, float],
) -> Verdict:
    """Apply the thresholds of configs/training.yaml `promotion:` to held-out metrics.

    `champion` is None when there is no champion yet: only the absolute minimums apply.
    In dry_run the verdict is reported and the challenger is promoted anyway.
    """
    if mode in ("disabled", "forced"):
        return Verdict(mode, passed=True, promote=True, checks=[f"gate skipped ({mode})"])
    checks = []
    for name, minimum in min_metrics.items():
        ok = challenger[name] >= minimum
        checks.append(f"{'ok' if ok else 'FAILED'}: {name} {challenger[name]:.4f} >= {minimum:.4f}")
    if champion is None:
        checks.append("ok: no champion yet, so no comparison")
    else:
        for name, needed in min_improvement.items():
            gain = challenger[name] - champion[name]
            ok = gain >= needed
            checks.append(
                f"{'ok' if ok else 'FAILED'}: {name} {challenger[name]:.4f} vs champion "
                f"{champion[name]:.4f} ({gain:+.4f}, needs {needed:+.4f})"
            )
    passed = not any(check.startswith("FAILED") for check in checks)
    return Verdict(mode, passed=passed, promote=passed or mode == "dry_run", checks=checks)
