"""Register this project's ZenML stacks from stacks/<name>.yaml: idempotent, never prompts.

Only what differs from the YAML is created or updated, so running it again is cheap.
"""

import os
from pathlib import Path
from typing import Any

from zenml.client import Client
from zenml.enums import StackComponentType

from .config import find_project_root, load_yaml
from .errors import StackError
from .tracker import embedded_tracking_uri

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

    tracker = components.get("experiment_tracker", {}).get("configuration")
    if tracker is not None:
        uri = os.environ.get("MLFLOW_TRACKING_URI") or tracker.get("tracking_uri") or ""
        tracker["tracking_uri"] = uri.strip()
        has_auth = tracker.get("tracking_token") or tracker.get("tracking_username")
        if uri.startswith(("http://", "https://")) and not has_auth:
            tracker["tracking_token"] = PLACEHOLDER_TOKEN
    return spec


def tracking_uri(spec: dict[str, Any]) -> str:
    """The tracking URI the stack's MLflow tracker uses (the embedded database if empty)."""
    components = spec["components"]
    uri = components.get("experiment_tracker", {}).get("configuration", {}).get("tracking_uri")
    if uri:
        return uri
    return embedded_tracking_uri(Path(components["artifact_store"]["configuration"]["path"]))


def _sync_component(client: Client, component_type: StackComponentType, spec: dict) -> str | None:
    name, flavor, configuration = spec["name"], spec["flavor"], spec["configuration"]
    try:
        existing = client.get_stack_component(component_type, name, allow_name_prefix_match=False)
    except KeyError:
        client.create_stack_component(name, flavor, component_type, configuration)
        return f"created {component_type.value} {name}"
    if existing.flavor_name != flavor:
        raise StackError(
            f"{component_type.value} '{name}' already exists with flavor '{existing.flavor_name}', "
            f"not '{flavor}': rename it in stacks/ or delete it with zenml"
        )
    if existing.configuration != configuration:
        stale = {key: None for key in existing.configuration if key not in configuration}
        changed = {**stale, **configuration}
        client.update_stack_component(name, component_type, configuration=changed)
        return f"updated {component_type.value} {name}"
    return None


def register_stack(name: str = "local", root: Path | None = None) -> list[str]:
    """Create or update the stack described by stacks/<name>.yaml and activate it.

    Returns the changes made (empty when everything was already up to date).
    """
    root = root or find_project_root()
    spec = load_stack_spec(name, root)
    changes = []
    if not (root / ".zen").is_dir():
        Client.initialize(root)  # `zenml init`: the active stack is then remembered per project
        changes.append(f"initialized ZenML repository in {root}")
    client = Client()
    components = {}
    for type_name, component in spec["components"].items():
        try:
            component_type = StackComponentType(type_name)
        except ValueError:
            raise StackError(f"stacks/{name}.yaml: unknown component type '{type_name}'") from None
        change = _sync_component(client, component_type, component)
        changes += [change] if change else []
        components[component_type] = component["name"]

    stack_name = spec["name"]
    try:
        existing = client.get_stack(stack_name, allow_name_prefix_match=False)
    except KeyError:
        client.create_stack(stack_name, components=components)
        changes.append(f"created stack {stack_name}")
    else:
        current = {ctype: models[0].name for ctype, models in existing.components.items()}
        if current != components:
            removed = {ctype: [] for ctype in current if ctype not in components}
            client.update_stack(stack_name, component_updates={**removed, **components})
            changes.append(f"updated stack {stack_name}")
    if client.active_stack_model.name != stack_name:
        client.activate_stack(stack_name)
        changes.append(f"activated stack {stack_name}")
    return changes
