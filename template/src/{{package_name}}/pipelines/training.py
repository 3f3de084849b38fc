"""Training pipeline: load -> validate -> split -> train -> evaluate -> register."""

from pathlib import Path

from zenml import Model, pipeline
from zenml.enums import ExecutionMode
from zenml.utils import source_utils

from ..config import DataConfig, ModelConfig, SplitConfig, TrainingConfig
from ..data.load import source_fingerprint
from ..steps.data import load_data, split_data, validate_data
from ..steps.evaluation import evaluate
from ..steps.registration import register
from ..steps.training import train


# FAIL_FAST re-raises a failing step's own exception, so the CLI can report it in one line.
@pipeline(execution_mode=ExecutionMode.FAIL_FAST)
def training_pipeline(
    data: DataConfig,
    split: SplitConfig,
    model: ModelConfig,
    model_name: str,
    data_fingerprint: str,
) -> None:
    raw = load_data(source=data.source, fingerprint=data_fingerprint)
    dataset = validate_data(raw, data=data)
    train_set, test_set = split_data(dataset, target=data.target, split=split)
    trained = train(train_set, target=data.target, model=model)
    metrics = evaluate(trained, test_set, target=data.target)
    register(trained, train_set, target=data.target, metrics=metrics, model_name=model_name)


def run_training(config: TrainingConfig, enable_cache: bool = True) -> tuple[dict, dict]:
    """Run the pipeline for a validated config; return the registered model and its metrics."""
    # Steps must load as `<package>.steps...` (from src/), not as `src.<package>...` (from the
    # ZenML repository root): one copy of every module and of every exception class.
    source_utils.set_custom_source_root(str(Path(__file__).resolve().parents[2]))
    run = training_pipeline.with_options(
        model=Model(name=config.registry.model_name, description="Trained by training_pipeline"),
        enable_cache=enable_cache,
    )(
        data=config.data,
        split=config.split,
        model=config.model,
        model_name=config.registry.model_name,
        data_fingerprint=source_fingerprint(config.data.source),
    )
    registered = run.steps["register"].outputs["registered_model"][0].load()
    metrics = run.steps["evaluate"].outputs["metrics"][0].load()
    return registered, metrics
