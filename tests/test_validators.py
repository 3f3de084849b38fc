"""Every question with rules rejects bad answers with a message that says what is wrong."""

import re

import pytest
import yaml

from conftest import TEMPLATE, render

PRODUCTION = {"mlflow_tracking_uri": "https://mlflow.example.com", "production_stack": "kubernetes"}
VERTEX = {**PRODUCTION, "production_stack": "vertex"}
AZURE = {**PRODUCTION, "artifact_store": "azure"}
SAGEMAKER = {**PRODUCTION, "production_stack": "sagemaker"}


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        ({"project_name": "  "}, "project_name is required"),
        ({"package_name": "Fraud"}, "lowercase Python identifier"),
        ({"package_name": "fraud-detector"}, "lowercase Python identifier"),
        ({"package_name": "2fast"}, "lowercase Python identifier"),
        ({"package_name": "café"}, "lowercase Python identifier"),
        ({"package_name": "class"}, "Python keyword"),
        ({"package_name": "json"}, "standard-library module or a dependency"),
        ({"package_name": "zenml"}, "standard-library module or a dependency"),
        ({"package_name": "mlflow"}, "standard-library module or a dependency"),
        ({"package_name": "test"}, "standard-library module or a dependency"),
        ({"project_name": "42"}, "lowercase Python identifier"),
        ({"author_email": "me"}, "author_email must look like name@example.com"),
        ({"author_email": "me@localhost"}, "author_email must look like"),
        ({"author_email": "a b@example.com"}, "author_email must look like"),
        ({"author_email": "me@@example.com"}, "author_email must look like"),
        ({"author_name": ""}, "author_name is required"),
        ({"mlflow_tracking_uri": "mlflow.example.com"}, "must be an http:// or https:// URL"),
        ({"mlflow_tracking_uri": "ftp://mlflow.example.com"}, "must be an http:// or https://"),
        ({"mlflow_tracking_uri": "http://"}, "no valid host"),
        ({"mlflow_tracking_uri": "http://:5000"}, "no valid host"),
        ({"mlflow_tracking_uri": "http://host:99999"}, "invalid port"),
        ({"mlflow_tracking_uri": "http://host:abc"}, "invalid port"),
        ({"mlflow_tracking_uri": "http://host: 5000"}, "must not contain spaces"),
        (
            {"mlflow_tracking_uri": "https://bob:pw@mlflow.example.com"},
            "must not contain credentials",
        ),
        (
            {"mlflow_tracking_uri": "http://h", "mlflow_auth": "basic", "mlflow_username": "a b"},
            "mlflow_username must not contain spaces",
        ),
        ({"mlflow_tracking_uri": "http://h:5000", "mlflow_auth": "oauth"}, "Invalid choice"),
        ({"zenml_server_url": "zenml.example.com"}, "zenml_server_url must be an http://"),
        ({"zenml_server_url": "grpc://zenml.example.com"}, "zenml_server_url must be an http://"),
        ({"zenml_server_url": "http://:8237"}, "zenml_server_url has no valid host"),
        ({"zenml_server_url": "http://host:0"}, "zenml_server_url has an invalid port"),
        ({"zenml_server_url": "http://host:8237 "}, "zenml_server_url must not contain spaces"),
        ({"zenml_server_url": "https://host/?key=x"}, "must not have a query or fragment"),
        (
            {"zenml_server_url": "https://sa:ZENKEY_x@zenml.example.com"},
            "zenml_server_url must not contain credentials",
        ),
        ({"license": "GPL-3.0"}, "Invalid choice"),
        ({"python_version": "3.9"}, "Invalid choice"),
        ({"model_framework": "pytorch"}, "Invalid choice"),
        ({"ci_provider": "jenkins"}, "Invalid choice"),
        ({"production_stack": "kubernetes"}, "needs a shared MLflow server"),
        ({"shadow_challenger": True}, "shadow_challenger needs monitoring"),
        ({**PRODUCTION, "production_stack": "ec2"}, "Invalid choice"),
        (
            {**PRODUCTION, "production_stack": "sagemaker", "artifact_store": "gcs"},
            "needs artifact_store 's3'",
        ),
        (
            {**PRODUCTION, "production_stack": "vertex", "artifact_store": "s3"},
            "needs artifact_store 'gcs'",
        ),
        ({**PRODUCTION, "artifact_store_uri": "gs://bucket"}, "must start with s3://"),
        (
            {**PRODUCTION, "artifact_store_uri": "s3://Bad_Bucket"},
            "invalid bucket name 'Bad_Bucket'",
        ),
        ({**PRODUCTION, "artifact_store_uri": "s3://ab"}, "invalid bucket name"),
        (
            {**PRODUCTION, "artifact_store_uri": "s3://bucket/"},
            "must not contain spaces or end with",
        ),
        ({**PRODUCTION, "cloud_region": "Europe West"}, "cloud_region must look like eu-west-1"),
        (
            {**PRODUCTION, "container_registry_uri": "https://1.dkr.ecr.x.amazonaws.com"},
            "without scheme",
        ),
        ({**PRODUCTION, "container_registry_uri": "docker.io/me"}, "must be an ECR registry"),
        (
            {
                **PRODUCTION,
                "container_registry_uri": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/repo",
            },
            "must be an ECR",
        ),
        (
            {**PRODUCTION, "kubernetes_namespace": "ML_Serving"},
            "kubernetes_namespace must be a DNS label",
        ),
        (
            {**PRODUCTION, "kubernetes_context": "my context"},
            "kubernetes_context must be a kubectl context",
        ),
        ({**VERTEX, "gcp_project": "Prod"}, "gcp_project must be a Google Cloud project id"),
        (
            {**VERTEX, "container_registry_uri": "europe-west1-docker.pkg.dev/p"},
            "REGION-docker.pkg.dev/PROJECT/REPOSITORY",
        ),
        (
            {**AZURE, "container_registry_uri": "myregistry.azurecr.com"},
            "must be an Azure registry",
        ),
        (
            {**AZURE, "container_registry_uri": "myregistry.azurecr.io/"},
            "must be an Azure registry",
        ),
        ({**AZURE, "artifact_store_uri": "az://my.container"}, "invalid bucket name"),
        ({**SAGEMAKER, "sagemaker_execution_role": "my-role"}, "must be an IAM role ARN"),
        (
            {**SAGEMAKER, "sagemaker_execution_role": "arn:aws:iam::12:role/x"},
            "must be an IAM role ARN",
        ),
    ],
)
def test_bad_answers_are_rejected_with_a_message(tmp_path, answers, message):
    with pytest.raises(ValueError, match=message):
        render(tmp_path / "project", **answers)
    assert not (tmp_path / "project" / "pyproject.toml").exists()


@pytest.mark.parametrize(
    ("project_name", "package_name"),
    [
        ("Fraud Detector", "fraud_detector"),
        ("  My Cool-Project 2!  ", "my_cool_project_2"),
        ("credit.risk", "credit_risk"),
        ("Été Forecast", "t_forecast"),
    ],
)
def test_package_name_is_derived_from_the_project_name(tmp_path, project_name, package_name):
    project = render(tmp_path / "project", project_name=project_name)
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert answers["package_name"] == package_name
    assert (project / "src" / package_name / "cli.py").is_file()


@pytest.mark.parametrize(
    "uri",
    [
        "http://127.0.0.1:5000",
        "https://mlflow.example.com",
        "https://mlflow.example.com/prefix/",
        "http://localhost",
        "http://[::1]:8080",
        "http://mlflow-svc.ml.svc.cluster.local:5000",
    ],
)
def test_good_tracking_uris_are_accepted(tmp_path, uri):
    project = render(tmp_path / "project", mlflow_tracking_uri=uri)
    assert uri in (project / "stacks" / "remote-mlflow.yaml").read_text()


@pytest.mark.parametrize(
    "url", ["", "http://127.0.0.1:8237", "https://zenml.example.com/", "http://[::1]:8080/zenml"]
)
def test_good_zenml_server_urls_are_accepted_and_recorded(tmp_path, url):
    project = render(tmp_path / "project", zenml_server_url=url)
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert answers["zenml_server_url"] == url
    module = project / "src/fraud_detector/platform/zenml_server.py"
    assert module.exists() == bool(url)  # no server, no login code
    assert not url or f'SERVER_URL = "{url}"' in module.read_text()


AUTH_KEYS = {"mlflow_auth", "mlflow_username", "mlflow_password", "mlflow_token"}


@pytest.mark.parametrize(
    ("answers", "recorded"),
    [
        ({}, set()),
        ({"mlflow_tracking_uri": "http://h:5000"}, {"mlflow_auth"}),
        ({"mlflow_tracking_uri": "https://h"}, {"mlflow_auth", "mlflow_insecure_tls"}),
        (
            {"mlflow_tracking_uri": "http://h", "mlflow_auth": "basic", "mlflow_password": "pw"},
            {"mlflow_auth", "mlflow_username"},
        ),
        ({"mlflow_tracking_uri": "http://h", "mlflow_auth": "token"}, {"mlflow_auth"}),
    ],
)
def test_auth_questions_are_asked_only_when_relevant_and_secrets_never_recorded(
    tmp_path, answers, recorded
):
    project = render(tmp_path / "project", **answers)
    keys = set(yaml.safe_load((project / ".copier-answers.yml").read_text()))
    assert keys & (AUTH_KEYS | {"mlflow_insecure_tls"}) == recorded
    assert (project / ".env").exists() == bool(answers.get("mlflow_password"))


def test_auth_none_over_http_is_allowed(tmp_path):
    """We cannot know whether a server wants credentials: `doctor` tells."""
    project = render(tmp_path / "project", mlflow_tracking_uri="http://h", mlflow_auth="none")
    assert "auth: none" in (project / "stacks" / "remote-mlflow.yaml").read_text()
    assert not (project / ".env").exists()


@pytest.mark.parametrize(
    ("answers", "asked"),
    [
        ({}, set()),
        (
            PRODUCTION,
            {
                "artifact_store",
                "artifact_store_uri",
                "cloud_region",
                "container_registry_uri",
                "kubernetes_context",
                "kubernetes_namespace",
            },
        ),
        (
            AZURE,
            {
                "artifact_store",
                "artifact_store_uri",
                "container_registry_uri",
                "kubernetes_context",
                "kubernetes_namespace",
            },
        ),
        (
            SAGEMAKER,
            {
                "artifact_store",
                "artifact_store_uri",
                "cloud_region",
                "container_registry_uri",
                "sagemaker_execution_role",
            },
        ),
        (
            VERTEX,
            {
                "artifact_store",
                "artifact_store_uri",
                "cloud_region",
                "gcp_project",
                "container_registry_uri",
            },
        ),
    ],
)
def test_production_questions_are_asked_only_when_relevant(tmp_path, answers, asked):
    project = render(tmp_path / "project", **answers)
    recorded = yaml.safe_load((project / ".copier-answers.yml").read_text())
    production = {
        "artifact_store",
        "artifact_store_uri",
        "cloud_region",
        "gcp_project",
        "container_registry_uri",
        "kubernetes_context",
        "kubernetes_namespace",
        "sagemaker_execution_role",
    }
    assert production & set(recorded) == asked


def test_production_defaults_are_consistent_with_the_cloud(tmp_path):
    project = render(
        tmp_path / "project", **VERTEX, cloud_region="europe-west4", gcp_project="acme-ml"
    )
    recorded = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert recorded["artifact_store"] == "gcs"
    assert recorded["artifact_store_uri"] == "gs://fraud-detector-zenml-artifacts"
    assert recorded["container_registry_uri"] == "europe-west4-docker.pkg.dev/acme-ml/zenml"


LOOPBACK = "mlflow_tracking_uri: a production stack runs its steps off this machine"


@pytest.mark.parametrize(
    ("uri", "stack"),
    [
        ("http://127.0.0.1:5000", "kubernetes"),
        ("http://127.1.2.3:5000/mlflow", "sagemaker"),
        ("http://localhost:5000", "vertex"),
        ("https://LOCALHOST.", "kubernetes"),
        ("http://mlflow.localhost", "kubernetes"),
        ("http://[::1]:8080", "kubernetes"),
        ("http://[0:0:0:0:0:0:0:1]", "sagemaker"),
        ("http://[::ffff:127.0.0.1]:5000", "vertex"),
    ],
)
def test_a_loopback_tracker_with_a_production_stack_is_rejected(tmp_path, uri, stack):
    with pytest.raises(ValueError, match=re.escape(LOOPBACK)) as error:
        render(tmp_path / "project", mlflow_tracking_uri=uri, production_stack=stack)
    assert str(error.value).startswith("Validation error for question 'production_stack': ")
    assert str(error.value).endswith("use the tracker's network address")
    assert not (tmp_path / "project" / "pyproject.toml").exists()


@pytest.mark.parametrize(
    "uri",
    [
        "https://mlflow.example.com",
        "http://mlflow-svc.ml.svc.cluster.local:5000",
        "http://10.0.0.5:5000",
        "http://128.0.0.1",
        "http://localhost.example.com",
        "http://[fd00::1]:8080/mlflow",
    ],
)
def test_a_network_tracker_with_a_production_stack_is_accepted(tmp_path, uri):
    project = render(tmp_path / "project", mlflow_tracking_uri=uri, production_stack="kubernetes")
    assert f'tracking_uri: "{uri}"' in (project / "stacks" / "production.yaml").read_text()
    assert not (project / "validators.jinja").exists()  # the macros stay in the template


MACROS = TEMPLATE / "validators.jinja"
URL_VALIDATORS = {
    "mlflow_tracking_uri": "http_url",
    "zenml_server_url": "http_url",
    "artifact_store_uri": "bucket_uri",
    "container_registry_uri": "registry_uri",
    "production_stack": "loopback_url",
}


@pytest.mark.parametrize("path", [TEMPLATE / "copier.yml", MACROS], ids=lambda p: p.name)
def test_no_line_is_over_120_characters(path):
    long = [n for n, line in enumerate(path.read_text().splitlines(), 1) if len(line) > 120]
    assert long == [], f"{path.name}: lines over 120 characters: {long}"


def test_url_validation_lives_in_one_macro_file():
    questions = yaml.safe_load((TEMPLATE / "copier.yml").read_text())
    macros = MACROS.read_text()
    for name, macro in URL_VALIDATORS.items():
        validator = questions[name]["validator"]
        assert f'{{%- from "validators.jinja" import {macro} -%}}' in validator, name
        assert f"{macro}(" in validator.split("-%}", 1)[1], name
    for macro in set(URL_VALIDATORS.values()):
        assert len(re.findall(rf"{{%- macro {macro}\(", macros)) == 1, macro
    # No validator parses a URL or holds the URL characters on its own any more.
    for name, spec in questions.items():
        validator = spec.get("validator", "") if isinstance(spec, dict) else ""
        for fragment in ('partition("://")', "netloc", "url_characters", "0123456789-._~"):
            assert fragment not in validator, (name, fragment)
