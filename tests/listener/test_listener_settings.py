"""Settings: read from LISTENER_* environment variables, validated on load, secrets kept secret."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from webhook_listener.settings import ALL_SETTINGS, SECRET_SETTINGS, DispatchTarget, ListenerSettings, load_settings
from webhook_listener.storage import build_storage_clients

README = Path(__file__).resolve().parents[2] / "listener" / "README.md"
MINIMAL = {
    "LISTENER_WEBHOOK_SECRET": "a-webhook-secret-of-some-length",
    "LISTENER_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true",
    "LISTENER_GITHUB_REPOSITORY": "acme/serving",
    "LISTENER_GITHUB_TOKEN": "ghp_example_token_value",
}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ALL_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    for name, value in MINIMAL.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def test_defaults(env: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert settings.target_stack == "staging"
    assert settings.timestamp_tolerance_seconds == 300
    assert settings.promote_alias == "champion"
    assert settings.promote_stages == ("Production",)
    assert settings.models == ()
    assert settings.dispatch_target is DispatchTarget.GITHUB
    assert settings.github_api_url == "https://api.github.com"
    assert settings.github_event_type == "model-promoted"
    assert settings.queue_name == "model-promotions"
    assert settings.poison_queue_name == "model-promotions-poison"
    assert settings.queue_trigger_connection == "AzureWebJobsStorage"


def test_values_come_from_prefixed_environment_variables(env: pytest.MonkeyPatch) -> None:
    env.setenv("LISTENER_MODELS", " churn , fraud,")
    env.setenv("LISTENER_PROMOTE_STAGES", "Staging,Production")
    env.setenv("LISTENER_TARGET_STACK", "prod")
    env.setenv("LISTENER_MAX_DISPATCH_ATTEMPTS", "9")
    env.setenv("LISTENER_GITHUB_API_URL", "https://ghe.example.com/api/v3/")
    env.setenv("TARGET_STACK", "ignored-without-prefix")
    settings = load_settings()
    assert settings.models == ("churn", "fraud")
    assert settings.promote_stages == ("Staging", "Production")
    assert settings.target_stack == "prod"
    assert settings.max_dispatch_attempts == 9
    assert settings.github_api_url == "https://ghe.example.com/api/v3"


def test_azure_client_id_is_read_without_the_prefix(env: pytest.MonkeyPatch) -> None:
    env.setenv("AZURE_CLIENT_ID", "00000000-1111-2222-3333-444444444444")
    assert load_settings().azure_client_id == "00000000-1111-2222-3333-444444444444"


def test_every_problem_is_reported_at_once(env: pytest.MonkeyPatch) -> None:
    env.setenv("LISTENER_WEBHOOK_SECRET", "short")
    env.delenv("LISTENER_STORAGE_CONNECTION_STRING")
    env.delenv("LISTENER_GITHUB_TOKEN")
    with pytest.raises(ValidationError) as caught:
        load_settings()
    message = str(caught.value)
    assert "LISTENER_WEBHOOK_SECRET must be at least 16 characters" in message
    assert "LISTENER_STORAGE_CONNECTION_STRING" in message
    assert "LISTENER_GITHUB_TOKEN is required" in message


def test_webhook_secret_is_required(env: pytest.MonkeyPatch) -> None:
    env.delenv("LISTENER_WEBHOOK_SECRET")
    with pytest.raises(ValidationError, match="webhook_secret"):
        load_settings()


def test_connection_string_and_account_urls_are_exclusive(env: pytest.MonkeyPatch) -> None:
    env.setenv("LISTENER_QUEUE_ACCOUNT_URL", "https://acct.queue.core.windows.net")
    env.setenv("LISTENER_TABLE_ACCOUNT_URL", "https://acct.table.core.windows.net")
    with pytest.raises(ValidationError, match="not both"):
        load_settings()


def test_account_urls_need_both_queue_and_table(env: pytest.MonkeyPatch) -> None:
    env.delenv("LISTENER_STORAGE_CONNECTION_STRING")
    env.setenv("LISTENER_QUEUE_ACCOUNT_URL", "https://acct.queue.core.windows.net")
    with pytest.raises(ValidationError, match="LISTENER_TABLE_ACCOUNT_URL"):
        load_settings()


async def test_account_urls_use_a_managed_identity_credential(env: pytest.MonkeyPatch) -> None:
    env.delenv("LISTENER_STORAGE_CONNECTION_STRING")
    env.setenv("LISTENER_QUEUE_ACCOUNT_URL", "https://acct.queue.core.windows.net/")
    env.setenv("LISTENER_TABLE_ACCOUNT_URL", "https://acct.table.core.windows.net")
    env.setenv("AZURE_CLIENT_ID", "00000000-1111-2222-3333-444444444444")
    clients = build_storage_clients(load_settings())
    try:
        assert clients.credential is not None
        assert type(clients.credential).__name__ == "DefaultAzureCredential"
        assert clients.queue.url == "https://acct.queue.core.windows.net/model-promotions"
        assert clients.poison_queue.url == "https://acct.queue.core.windows.net/model-promotions-poison"
        assert clients.table.url.startswith("https://acct.table.core.windows.net")
    finally:
        await clients.aclose()


def test_azure_devops_target_needs_its_settings(env: pytest.MonkeyPatch) -> None:
    env.setenv("LISTENER_DISPATCH_TARGET", "azure-devops")
    with pytest.raises(ValidationError) as caught:
        load_settings()
    for name in ("ORG_URL", "PROJECT", "PIPELINE_ID", "TOKEN"):
        assert f"LISTENER_AZURE_DEVOPS_{name}" in str(caught.value)


def test_unknown_dispatch_target_is_refused(env: pytest.MonkeyPatch) -> None:
    env.setenv("LISTENER_DISPATCH_TARGET", "jenkins")
    with pytest.raises(ValidationError, match="dispatch_target"):
        load_settings()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LISTENER_QUEUE_NAME", "Bad_Queue"),
        ("LISTENER_DEDUPE_TABLE_NAME", "bad-table"),
        ("LISTENER_GITHUB_REPOSITORY", "no-slash"),
        ("LISTENER_GITHUB_API_URL", "api.github.com"),
        ("LISTENER_TIMESTAMP_TOLERANCE_SECONDS", "0"),
        ("LISTENER_JOB_TOKEN", "short"),
    ],
)
def test_invalid_values_are_refused(env: pytest.MonkeyPatch, name: str, value: str) -> None:
    env.setenv(name, value)
    with pytest.raises(ValidationError):
        load_settings()


def test_secrets_never_appear_in_repr_or_errors(env: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert MINIMAL["LISTENER_WEBHOOK_SECRET"] not in repr(settings)
    assert MINIMAL["LISTENER_GITHUB_TOKEN"] not in str(settings)
    env.setenv("LISTENER_JOB_TOKEN", "tiny-secret")
    with pytest.raises(ValidationError) as caught:
        load_settings()
    assert "tiny-secret" not in str(caught.value)


def test_secret_settings_are_exactly_the_secret_typed_fields() -> None:
    secret_typed = set()
    for name, field in ListenerSettings.model_fields.items():
        if SecretStr in (field.annotation, *getattr(field.annotation, "__args__", ())):
            secret_typed.add(f"LISTENER_{name.upper()}")
    assert secret_typed == SECRET_SETTINGS
    assert SECRET_SETTINGS < ALL_SETTINGS


def test_all_settings_lists_every_variable_the_class_reads(env: pytest.MonkeyPatch) -> None:
    # Set every listed variable to a distinctive valid value and check each one lands in a field.
    values = {
        "LISTENER_WEBHOOK_SECRET": "w" * 20,
        "LISTENER_JOB_TOKEN": "j" * 20,
        "LISTENER_TIMESTAMP_TOLERANCE_SECONDS": "123",
        "LISTENER_MAX_BODY_BYTES": "4321",
        "LISTENER_MODELS": "m1",
        "LISTENER_PROMOTE_ALIAS": "prod",
        "LISTENER_PROMOTE_STAGES": "Staging",
        "LISTENER_TARGET_STACK": "canary",
        "LISTENER_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true;x=1",
        "LISTENER_QUEUE_NAME": "q-one",
        "LISTENER_POISON_QUEUE_NAME": "q-two",
        "LISTENER_DEDUPE_TABLE_NAME": "tablethree",
        "LISTENER_QUEUE_TRIGGER_CONNECTION": "PromotionsStorage",
        "LISTENER_ACCEPT_TIMEOUT_SECONDS": "2.5",
        "LISTENER_DISPATCH_TARGET": "github",
        "LISTENER_MAX_DISPATCH_ATTEMPTS": "7",
        "LISTENER_RETRY_BASE_SECONDS": "3",
        "LISTENER_RETRY_MAX_SECONDS": "33",
        "LISTENER_DISPATCH_TIMEOUT_SECONDS": "4.5",
        "LISTENER_WORKER_POLL_SECONDS": "0.7",
        "LISTENER_GITHUB_API_URL": "https://ghe.example.com/api/v3",
        "LISTENER_GITHUB_REPOSITORY": "org/repo",
        "LISTENER_GITHUB_TOKEN": "g" * 20,
        "LISTENER_GITHUB_EVENT_TYPE": "promote",
        "LISTENER_GITHUB_DRIFT_EVENT_TYPE": "retrain",
        "LISTENER_ALERTMANAGER_TOKEN": "m" * 20,
        "LISTENER_AZURE_MONITOR_TOKEN": "z" * 20,
        "LISTENER_DRIFT_ALERT_NAMES": "DriftA",
        "LISTENER_AZURE_DEVOPS_DRIFT_PIPELINE_ID": "13",
        "LISTENER_AZURE_DEVOPS_ORG_URL": "https://dev.azure.com/org",
        "LISTENER_AZURE_DEVOPS_PROJECT": "proj",
        "LISTENER_AZURE_DEVOPS_PIPELINE_ID": "12",
        "LISTENER_AZURE_DEVOPS_TOKEN": "a" * 20,
        "LISTENER_LOG_LEVEL": "DEBUG",
        "AZURE_CLIENT_ID": "client-id",
    }
    # Only the two URL settings are left out: they exclude the connection string (tested above).
    assert set(values) | {"LISTENER_QUEUE_ACCOUNT_URL", "LISTENER_TABLE_ACCOUNT_URL"} == ALL_SETTINGS
    for name, value in values.items():
        env.setenv(name, value)
    dumped = load_settings().model_dump()
    seen = {str(v.get_secret_value() if isinstance(v, SecretStr) else v) for v in dumped.values()}
    seen |= {item for v in dumped.values() if isinstance(v, tuple) for item in v}
    for name, value in values.items():
        assert value in seen, name


def test_readme_documents_every_setting() -> None:
    documented = set(re.findall(r"`((?:LISTENER_|AZURE_CLIENT_ID)[A-Z_]*)`", README.read_text()))
    assert documented >= ALL_SETTINGS
