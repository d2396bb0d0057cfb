"""Pure: a YAML file of deployments for `hv apply`, in the API's field names, with `depends_on` naming other
deployments of the same file (or giving ids of existing ones), put in an order that creates dependencies first."""
import yaml


class ManifestError(ValueError):
    """The file is not a valid list of deployments."""


def load(text: str) -> list[dict]:
    """One deployment (a mapping), a list of them, or `{deployments: [...]}`."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ManifestError(f"not YAML: {error}") from error
    if isinstance(document, dict) and "deployments" in document:
        document = document["deployments"]
    specs = [document] if isinstance(document, dict) else document
    if not isinstance(specs, list) or not specs or not all(isinstance(spec, dict) for spec in specs):
        raise ManifestError("expected a deployment, a list of deployments, or `deployments:` with a list")
    names = [spec.get("name") for spec in specs]
    if any(not isinstance(name, str) or not name for name in names):
        raise ManifestError("every deployment needs a `name`")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ManifestError(f"names must be unique within the file: {', '.join(duplicates)}")
    return specs


def in_creation_order(specs: list[dict]) -> list[dict]:
    """Dependencies first (by name within the file); a cycle or an unknown name is an error."""
    by_name = {spec["name"]: spec for spec in specs}
    for spec in specs:
        for dependency in spec.get("depends_on") or []:
            if isinstance(dependency, str) and dependency not in by_name:
                raise ManifestError(f"{spec['name']}: depends_on names '{dependency}', which is not in the file")
    ordered, state = [], {}

    def visit(name: str, path: tuple[str, ...]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            raise ManifestError(f"depends_on forms a cycle: {' -> '.join((*path, name))}")
        state[name] = "visiting"
        for dependency in by_name[name].get("depends_on") or []:
            if isinstance(dependency, str):
                visit(dependency, (*path, name))
        state[name] = "done"
        ordered.append(by_name[name])

    for spec in specs:
        visit(spec["name"], ())
    return ordered


def body_of(spec: dict, ids: dict[str, int]) -> dict:
    """The API body of one deployment, its dependencies by name replaced with the ids they were created as."""
    body = dict(spec)
    if body.get("depends_on"):
        body["depends_on"] = [ids[d] if isinstance(d, str) else d for d in body["depends_on"]]
    return body
