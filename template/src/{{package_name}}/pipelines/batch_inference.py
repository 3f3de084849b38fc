"""Batch inference pipeline: resolve @champion -> load a batch -> drift check against the
training data -> validate and score it."""

from zenml import pipeline
from zenml.enums import ExecutionMode

from ..config import BatchInferenceConfig, DataConfig, DriftConfig
from ..steps.batch_inference import check_drift, load_batch, score_batch
from ..steps.deployment import resolve_version
from . import image_settings, use_package_sources


@pipeline(execution_mode=ExecutionMode.FAIL_FAST, enable_cache=False)
def batch_inference_pipeline(
    model_name: str,
    alias: str,
    source: str,
    target: str,
    labels: list,
    max_missing_fraction: float,
    output: str,
    drift: DriftConfig,
) -> None:
    model = resolve_version(model_name, alias)
    batch = load_batch(source, target=target)
    checked, _ = check_drift(batch, model, drift=drift)
    score_batch(
        batch,
        model,
        labels,
        max_missing_fraction=max_missing_fraction,
        output=output,
        drift=checked,
    )


def run_batch_inference(config: BatchInferenceConfig, data: DataConfig) -> dict[str, str]:
    """Score `config.input` with the model under `config.alias`, using the training data rules."""
    use_package_sources()
    run = batch_inference_pipeline.with_options(settings=image_settings())(
        model_name=config.model_name,
        alias=config.alias,
        source=config.input,
        target=data.target,
        labels=data.labels,
        max_missing_fraction=data.max_missing_fraction,
        output=config.output,
        drift=config.drift,
    )
    return run.steps["score_batch"].outputs["batch_predictions"][0].load()
