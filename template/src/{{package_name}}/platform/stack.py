"""Register this project's ZenML stacks from stacks/<name>.yaml: idempotent, never prompts.

Only what differs from the YAML is created or updated, so running it again is cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import DEFAULT_STACK, find_project_root, load_yaml
from ..errors import StackError
from .credentials import credentials_for, tracker_settings
from .tracker import Tracker, embedded_tracking_uri, is_remote

if TYPE_CHECKING:  # ZenML is imported where it is used: reading a stack file needs none of it
    from zenml.client import Client
    from zenml.enums import StackComponentType

# ZenML wants exactly one auth method for an http(s) tracker, even when the server has no
# authentication; this token is sent along and ignored by such a server.
PLACEHOLDER_TOKEN = "unused-no-auth"


def load_stack_spec(name: str, root: Path | None = None) -> dict[str, Any]:
    """Read stacks/<name>.yaml with relative paths resolved and MLFLOW_TRACKING_URI applied."""
    root = root or find_project_root()
    path = root / "stacks" / f"{name}.yaml"
    if not path.is_file():
        available = ", ".join(sorted(p.stem for p in (root / "stacks").glob("*.yaml")))
        raise StackError(f"no stack file {path} (available: {available})")
    spec = load_yaml(path)
    components = spec.get("components") or {}
    if not spec.get("name") or not isinstance(components, dict):
        raise StackError(f"{path} needs a 'name' and a 'components' mapping")
    for component in components.values():
        component["configuration"] = dict(component.get("configuration") or {})

    store = components.get("artifact_store", {}).get("configuration", {})
    if store.get("path") and "://" not in store["path"] and not Path(store["path"]).is_absolute():
        store["path"] = str(root / store["path"])

    if "experiment_tracker" in components:
        _apply_tracker_settings(spec, tracker_settings(root))
    return spec


def secret_name(spec: dict[str, Any]) -> str:
    """The ZenML secret holding this stack's MLflow credentials."""
    return f"{spec['name']}-mlflow"


def secret_reference(name: str, key: str) -> str:
    """ZenML's reference to a secret value: name.key in double braces (spelled out here so
    the template's check for leftover Jinja syntax stays strict)."""
    return "{" * 2 + f"{name}.{key}" + "}" * 2


def _apply_tracker_settings(spec: dict[str, Any], settings: dict[str, str]) -> None:
    """Point the tracker at MLFLOW_TRACKING_URI (if set) and at the credentials' ZenML secret.

    The config only holds references to the secret's keys; the values travel in spec["secret"]
    to the ZenML secrets store (see register_stack).
    """
    component = spec["components"]["experiment_tracker"]
    tracker = component["configuration"]
    auth = str(component.pop("auth", "none"))
    uri = settings.get("MLFLOW_TRACKING_URI") or tracker.get("tracking_uri") or ""
    tracker["tracking_uri"] = uri.strip()
    spec["secret"] = {}
    if not is_remote(uri):
        return
    values = credentials_for(auth, settings)
    if values:
        name = secret_name(spec)
        tracker.update({f"tracking_{key}": secret_reference(name, key) for key in values})
        spec["secret"] = values
    elif not (tracker.get("tracking_token") or tracker.get("tracking_username")):
        tracker["tracking_token"] = PLACEHOLDER_TOKEN


def tracking_uri(spec: dict[str, Any]) -> str:
    """The tracking URI the stack's MLflow tracker uses (the embedded database if empty)."""
    components = spec["components"]
    uri = components.get("experiment_tracker", {}).get("configuration", {}).get("tracking_uri")
    if uri:
        return uri
    return embedded_tracking_uri(Path(components["artifact_store"]["configuration"]["path"]))


def tracker_connection(spec: dict[str, Any]) -> Tracker:
    """What the preflight checks need to reach the stack's tracker as the pipeline will."""
    configuration = spec["components"].get("experiment_tracker", {}).get("configuration", {})
    return Tracker(
        uri=tracking_uri(spec),
        credentials=dict(spec.get("secret") or {}),
        insecure_tls=bool(configuration.get("tracking_insecure_tls")),
    )


def _sync_secret(client: Client, name: str, values: dict[str, str], apply: bool) -> str | None:
    """Create, update (only when a value changed) or, without credentials, delete the secret."""
    try:
        existing = client.get_secret(
            name, allow_partial_name_match=False, allow_partial_id_match=False
        )
    except KeyError:
        if not values:
            return None
        if apply:
            client.create_secret(name, values=values)
        return f"create secret {name}"
    if not values:
        if apply:
            client.delete_secret(name)
        return f"delete secret {name} (no credentials configured)"
    current = existing.secret_values
    if current == values:
        return None
    if apply:
        stale = [key for key in current if key not in values]
        client.update_secret(name, add_or_update_values=values, remove_values=stale or None)
    return f"update secret {name}"


def _validated(
    client: Client,
    component_type: StackComponentType,
    spec: dict[str, Any],
    secret: dict[str, str],
) -> dict[str, Any]:
    """The configuration as ZenML's flavor validates and stores it (defaults its validators
    fill in included), so that comparing it with the registered one is exact.

    References to the stack's secret are validated with the values they will resolve to (the
    secret may not exist yet: --dry-run) and kept as references.
    """
    from zenml.stack.utils import validate_stack_component_config

    name, flavor, configuration = spec["name"], spec["flavor"], spec["configuration"]
    try:
        client.get_flavor_by_name_and_type(flavor, component_type)
    except KeyError:
        raise StackError(
            f"{component_type.value} '{name}': ZenML has no {component_type.value} flavor "
            f"'{flavor}'"
        ) from None
    references = {
        key: value
        for key, value in configuration.items()
        if isinstance(value, str) and value.startswith("{" * 2) and value.endswith("}" * 2)
    }
    resolved = {
        **configuration,
        **{key: secret.get(ref[2:-2].split(".", 1)[-1], ref) for key, ref in references.items()},
    }
    try:
        validated = validate_stack_component_config(resolved, flavor, component_type)
    except (ValueError, ImportError) as error:
        first_line = str(error).strip().splitlines()[0]
        raise StackError(f"{component_type.value} '{name}' ({flavor}): {first_line}") from None
    return {**validated.model_dump(mode="json", exclude_unset=True), **references}


def _sync_component(
    client: Client,
    component_type: StackComponentType,
    spec: dict,
    secret: dict[str, str],
    connector_id,
    apply: bool,
) -> str | None:
    name, flavor = spec["name"], spec["flavor"]
    configuration = _validated(client, component_type, spec, secret)
    link = spec.get("connector") and connector_id
    resource_id = None
    if link:
        from .connectors import resource_id_for

        resource_id = resource_id_for(component_type, configuration)
    try:
        existing = client.get_stack_component(component_type, name, allow_name_prefix_match=False)
    except KeyError:
        if apply:
            client.create_stack_component(name, flavor, component_type, configuration)
            if link:
                client.update_stack_component(
                    name, component_type, connector_id=link, connector_resource_id=resource_id
                )
        return f"create {component_type.value} {name} ({flavor})"
    if existing.flavor_name != flavor:
        raise StackError(
            f"{component_type.value} '{name}' already exists with flavor '{existing.flavor_name}', "
            f"not '{flavor}': rename it in stacks/ or delete it with zenml"
        )
    changed_keys = sorted(
        key
        for key in {*existing.configuration, *configuration}
        if existing.configuration.get(key) != configuration.get(key)
    )
    relink = link and (
        existing.connector is None
        or existing.connector.id != link
        or existing.connector_resource_id != resource_id
    )
    if not changed_keys and not relink:
        return None
    if apply:
        if changed_keys:
            stale = {key: None for key in existing.configuration if key not in configuration}
            client.update_stack_component(
                name, component_type, configuration={**stale, **configuration}
            )
        if relink:
            client.update_stack_component(
                name, component_type, connector_id=link, connector_resource_id=resource_id
            )
    details = ", ".join(changed_keys + (["service connector"] if relink else []))
    return f"update {component_type.value} {name} ({details})"


def register_stack(
    name: str = DEFAULT_STACK, root: Path | None = None, dry_run: bool = False
) -> list[str]:
    """Create or update the stack described by stacks/<name>.yaml and activate it.

    Returns the changes (empty when everything was already up to date); with dry_run, the
    changes that would be made, and nothing is changed.
    """
    from zenml.client import Client
    from zenml.enums import StackComponentType

    root = root or find_project_root()
    spec = load_stack_spec(name, root)
    apply = not dry_run
    changes = []
    if not (root / ".zen").is_dir():
        if apply:
            Client.initialize(root)  # `zenml init`: the active stack is then remembered per project
        changes.append(f"initialize ZenML repository in {root}")
    client = Client()
    if spec.get("service_connector"):  # missing cloud credentials: stop before any change
        from .connectors import registered_connector

        registered_connector(client, spec, root)
    # The secret first: the tracker's configuration refers to it.
    change = _sync_secret(client, secret_name(spec), spec.get("secret") or {}, apply)
    changes += [change] if change else []
    connector_id = None
    if spec.get("service_connector"):
        from .connectors import sync_connector

        change, connector_id = sync_connector(client, spec, root, apply)
        changes += [change] if change else []
    components = {}
    for type_name, component in spec["components"].items():
        try:
            component_type = StackComponentType(type_name)
        except ValueError:
            raise StackError(f"stacks/{name}.yaml: unknown component type '{type_name}'") from None
        secret = spec.get("secret") or {}
        change = _sync_component(client, component_type, component, secret, connector_id, apply)
        changes += [change] if change else []
        components[component_type] = component["name"]

    return changes + _sync_stack(client, spec["name"], components, apply)


def _sync_stack(client: Client, stack_name: str, components: dict, apply: bool) -> list[str]:
    """Create or update the stack from its components, and activate it."""
    changes = []
    try:
        existing = client.get_stack(stack_name, allow_name_prefix_match=False)
    except KeyError:
        if apply:
            client.create_stack(stack_name, components=components)
        changes.append(f"create stack {stack_name}")
    else:
        current = {ctype: models[0].name for ctype, models in existing.components.items()}
        if current != components:
            if apply:
                removed = {ctype: [] for ctype in current if ctype not in components}
                client.update_stack(stack_name, component_updates={**removed, **components})
            changes.append(f"update stack {stack_name}")
    if client.active_stack_model.name != stack_name:
        if apply:
            _activate(client, stack_name)
        changes.append(f"activate stack {stack_name}")
    return changes


def _activate(client: Client, stack_name: str) -> None:
    """ZenML validates a stack when it is activated (e.g. a remote orchestrator needs a container
    registry and the cloud extras): report why in one line."""
    try:
        client.activate_stack(stack_name)
    except (ImportError, RuntimeError, ValueError, KeyError) as error:
        raise StackError(
            f"stack {stack_name} is registered but ZenML cannot activate it: "
            f"{str(error).splitlines()[0] if str(error) else type(error).__name__}"
        ) from None


def stack_status(spec: dict[str, Any]) -> str:
    """Check that the stack is registered, active and holds the current credentials."""
    from zenml.client import Client

    name = spec["name"]
    client = Client()
    try:
        client.get_stack(name, allow_name_prefix_match=False)
    except KeyError:
        raise StackError(f"stack {name} is not registered: run `make stack`") from None
    active = client.active_stack_model.name
    if active != name:
        raise StackError(f"stack {name} is registered but {active} is active: run `make stack`")
    values = spec.get("secret") or {}
    if values:
        try:
            stored = client.get_secret(
                secret_name(spec), allow_partial_name_match=False, allow_partial_id_match=False
            ).secret_values
        except KeyError:
            stored = {}
        if stored != values:
            raise StackError(
                f"the credentials changed since stack {name} was registered: run `make stack`"
            )
    return f"{name} is registered and active"
