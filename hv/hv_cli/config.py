"""Where hv keeps the server and the tokens: one JSON file under the user's config directory (XDG_CONFIG_HOME),
readable by its user only, and replaced atomically so a reader never sees half of it."""
import json
import os
import tempfile
from pathlib import Path

from platformdirs import user_config_dir


def directory() -> Path:
    return Path(user_config_dir("hv"))


def path() -> Path:
    return directory() / "config.json"


def lock_path() -> Path:
    """Held while the tokens are refreshed: refresh tokens rotate, so two hv processes must take turns."""
    return directory() / "config.lock"


def load() -> dict:
    try:
        return json.loads(path().read_text())
    except FileNotFoundError:
        return {}


def save(settings: dict) -> None:
    directory().mkdir(parents=True, exist_ok=True, mode=0o700)
    # mkstemp creates the file 0600; os.replace swaps it in whole, even for a reader in another process.
    descriptor, temporary = tempfile.mkstemp(dir=directory(), prefix=".config.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w") as file:
            json.dump(settings, file, indent=2)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path())
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
