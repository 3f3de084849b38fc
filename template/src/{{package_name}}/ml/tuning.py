"""Hyperparameter search on the training split, for any framework of this project.

Each candidate is scored by k-fold cross-validation on the training split (stratified for
classification; the held-out split is never seen), and logged as an MLflow child run of the
active run, if any.
The caller trains the best candidate again on the whole training split.
"""

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from pydantic import ValidationError
from scipy import stats
from sklearn.model_selection import KFold, ParameterGrid, ParameterSampler, StratifiedKFold

from ..config import DataConfig, ModelConfig, SearchRange, TuningConfig
from ..errors import ConfigError
from . import LOWER_IS_BETTER
from .metrics import evaluate
from .model import train_model


@dataclass
class Trial:
    number: int
    params: dict[str, Any]
    score: float  # mean over the folds
    fold_scores: list[float]


@dataclass
class SearchResult:
    model: ModelConfig  # the best candidate's settings
    best: Trial
    trials: list[Trial]


def _distribution(values: list[Any] | SearchRange):
    if not isinstance(values, SearchRange):
        return values  # ParameterSampler picks one of the listed values
    if values.log:
        return stats.loguniform(values.low, values.high)
    return stats.uniform(values.low, values.high - values.low)


def candidates(tuning: TuningConfig) -> list[dict[str, Any]]:
    """Every combination (grid), or `tuning.trials` seeded draws (random; ranges are sampled
    uniformly or log-uniformly, lists pick one value)."""
    if tuning.strategy == "grid":
        return list(ParameterGrid(tuning.search_space))
    space = {key: _distribution(values) for key, values in tuning.search_space.items()}
    drawn = ParameterSampler(space, n_iter=tuning.trials, random_state=tuning.seed)
    # Plain Python numbers, so that they log and validate like values read from YAML.
    return [{k: v.item() if isinstance(v, np.generic) else v for k, v in c.items()} for c in drawn]


def with_params(model: ModelConfig, params: dict[str, Any]) -> ModelConfig:
    """The model settings with `params` applied; dotted keys reach nested ones (params.C)."""
    settings = model.model_dump()
    for key, value in params.items():
        *parents, leaf = key.split(".")
        node = settings
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    try:
        return ModelConfig.model_validate(settings)
    except ValidationError as error:
        raise ConfigError(f"tuning.search_space {params}: {error.errors()[0]['msg']}") from None


def cross_validated_score(
    features: pd.DataFrame,
    y: pd.Series,
    model: ModelConfig,
    data: DataConfig,
    tuning: TuningConfig,
) -> list[float]:
    """`tuning.metric` on each validation fold of the training split."""
    kfold = StratifiedKFold if data.task == "classification" else KFold
    folds = kfold(n_splits=tuning.folds, shuffle=True, random_state=tuning.seed)
    try:
        splits = list(folds.split(features, y))
    except ValueError as error:
        raise ConfigError(f"tuning.folds: {error}") from None
    scores = []
    for fit_rows, validation_rows in splits:
        fitted = train_model(features.iloc[fit_rows], y.iloc[fit_rows], model, data.task)
        validation = features.iloc[validation_rows], y.iloc[validation_rows]
        metrics = evaluate(fitted, *validation, data.task, data.average)
        scores.append(metrics[tuning.metric])
    return scores


def search(
    features: pd.DataFrame,
    y: pd.Series,
    model: ModelConfig,
    tuning: TuningConfig,
    data: DataConfig,
) -> SearchResult:
    """Score every candidate; the best one is the first with the best mean score (the
    highest, or the lowest for an error such as rmse)."""
    tracked = mlflow.active_run() is not None
    trials = []
    for number, params in enumerate(candidates(tuning)):
        config = with_params(model, params)
        child = mlflow.start_run(run_name=f"trial-{number}", nested=True) if tracked else None
        with child or nullcontext():  # a Keras model logs its epochs to the trial's run
            scores = cross_validated_score(features, y, config, data, tuning)
            trial = Trial(number, params, float(np.mean(scores)), scores)
            if tracked:
                mlflow.log_params({"trial": number, **params})
                mlflow.log_metric(f"cv_{tuning.metric}", trial.score)
        trials.append(trial)
    sign = -1 if tuning.metric in LOWER_IS_BETTER else 1
    best = max(trials, key=lambda trial: sign * trial.score)
    return SearchResult(with_params(model, best.params), best, trials)
