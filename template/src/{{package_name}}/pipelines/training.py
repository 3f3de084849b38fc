"""Training pipeline: load -> validate -> split -> train -> evaluate -> register -> promote."""

from zenml import Model, pipeline
from zenml.enums import ExecutionMode

from ..config import (
    DataConfig,
    ModelConfig,
    PromotionConfig,
    SplitConfig,
    TrainingConfig,
    TuningConfig,
    find_project_root,
)
from ..data.load import data_steps_cache_key
from ..registry.registration import training_fingerprint
from ..steps.data import load_data, split_data, validate_data
from ..steps.evaluation import evaluate
from ..steps.promotion import promote
from ..steps.registration import register
from ..steps.training import train
from . import image_settings, use_package_sources


# FAIL_FAST re-raises a failing step's own exception, so the CLI can report it in one line.
@pipeline(execution_mode=ExecutionMode.FAIL_FAST)
def training_pipeline(
    data: DataConfig,
    split: SplitConfig,
    model: ModelConfig,
    promotion: PromotionConfig,
    model_name: str,
    data_fingerprint: str,
    tuning: TuningConfig | None = None,
    training_fingerprint: str = "",
) -> None:
    raw = load_data(source=data.source, fingerprint=data_fingerprint)
    dataset = validate_data(raw, data=data)
    train_set, test_set = split_data(dataset, target=data.target, split=split)
    trained = train(train_set, target=data.target, model=model, labels=data.labels, tuning=tuning)
    metrics, _ = evaluate(trained, test_set, target=data.target, labels=data.labels)
    registered = register(
        trained,
        train_set,
        data.target,
        data.labels,
        metrics=metrics,
        model_name=model_name,
        fingerprint=training_fingerprint,
    )
    promote(
        registered,
        metrics,
        train_set,
        test_set,
        data.target,
        labels=data.labels,
        source=data.source,
        promotion=promotion,
    )


def run_training(config: TrainingConfig, enable_cache: bool = True) -> tuple[dict, dict, dict]:
    """Run the pipeline for a validated config; return the registered model, its metrics and
    the promotion verdict."""
    use_package_sources()
    run = training_pipeline.with_options(
        model=Model(name=config.model_name, description="Trained by training_pipeline"),
        enable_cache=enable_cache,
        settings=image_settings(),
    )(
        data=config.data,
        split=config.split,
        model=config.model,
        promotion=config.promotion,
        model_name=config.model_name,
        data_fingerprint=data_steps_cache_key(config.data.source),
        tuning=config.tuning,
        training_fingerprint=training_fingerprint(config, find_project_root()),
    )
    registered = run.steps["register"].outputs["registered_model"][0].load()
    metrics = run.steps["evaluate"].outputs["metrics"][0].load()
    verdict = run.steps["promote"].outputs["promotion"][0].load()
    return registered, metrics, verdict
