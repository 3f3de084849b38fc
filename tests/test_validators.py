"""Every question with rules rejects bad answers with a message that says what is wrong."""

import pytest
import yaml

from conftest import render


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
        ({"license": "GPL-3.0"}, "Invalid choice"),
        ({"python_version": "3.9"}, "Invalid choice"),
        ({"model_framework": "pytorch"}, "Invalid choice"),
        ({"ci_provider": "jenkins"}, "Invalid choice"),
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
    assert uri in (project / "stacks" / "local.yaml").read_text()


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
    assert "auth: none" in (project / "stacks" / "local.yaml").read_text()
    assert not (project / ".env").exists()
