"""Resolve secret NAMES (as written in automations) to values from the dispatcher's own source."""

# Order: a file named NAME in `secrets_dir` (Kubernetes / Docker secrets mounts),
# then the environment variable `<prefix>NAME` (default prefix `HOOKSTREAM_SECRET_`).
# The prefix matters: automation authors choose secret names and the dispatcher sends
# the value to their URL, so an unprefixed lookup would let anyone who can write an
# automation exfiltrate any variable of the dispatcher's environment
# (`AWS_SECRET_ACCESS_KEY`, ...). Only variables an operator named for the purpose
# are reachable. Files are read at every lookup, so a rotated mount takes effect at once.
#
# This module is the documented exception to "only settings read the environment":
# the caller passes the mapping (normally `os.environ`) in; nothing is read at import.

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from pydantic import SecretStr

from app.dispatch.delivery_errors import InvalidJobError, SecretNotConfiguredError
from app.dispatch.signing import parse_secrets
from app.dispatch_settings import DispatchSettings

__all__ = ["SECRET_NAME_PATTERN", "SecretResolver"]

#: A secret name: a plain file name and a plausible env suffix; no paths, no dot-files.
SECRET_NAME_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


class SecretResolver:
    """Looks secrets up by name; values are SecretStr and never logged or returned in results."""

    def __init__(
        self,
        *,
        environ: Mapping[str, str],
        secrets_dir: Path | None = None,
        env_prefix: str = "HOOKSTREAM_SECRET_",
    ) -> None:
        self._environ = environ
        self._dir = secrets_dir
        self._prefix = env_prefix

    @classmethod
    def from_settings(
        cls, settings: DispatchSettings, environ: Mapping[str, str]
    ) -> SecretResolver:
        """A resolver over the configured folder and the given environment mapping."""
        return cls(
            environ=environ,
            secrets_dir=settings.secrets_dir,
            env_prefix=settings.secrets_env_prefix,
        )

    def __repr__(self) -> str:
        """Show the sources, never a value."""
        return f"SecretResolver(secrets_dir={self._dir!s}, env_prefix={self._prefix!r})"

    @staticmethod
    def check_name(name: object) -> str:
        """Return the name if valid, else raise InvalidJobError (no path tricks)."""
        if not isinstance(name, str) or not SECRET_NAME_PATTERN.fullmatch(name) or ".." in name:
            raise InvalidJobError(f"invalid secret name {name!r}")
        return name

    def _lookup(self, name: str) -> str | None:
        """The raw value from the folder, then the environment; None if absent or empty."""
        if self._dir is not None:
            path = self._dir / name
            try:
                value = path.read_text("utf-8").strip()
            except FileNotFoundError:
                value = ""
            except (OSError, UnicodeDecodeError) as exc:
                # The reason names the file, not its content.
                raise SecretNotConfiguredError(name) from exc
            if value:
                return value
        value = self._environ.get(self._prefix + name, "").strip()
        return value or None

    def resolve(self, name: str) -> SecretStr:
        """The value of secret `name`; SecretNotConfiguredError if it is nowhere."""
        value = self._lookup(self.check_name(name))
        if value is None:
            raise SecretNotConfiguredError(name)
        return SecretStr(value)

    def resolve_many(self, name: str) -> list[SecretStr]:
        """The whitespace-separated secrets of `name` (newest first, for rotation)."""
        return [SecretStr(s) for s in parse_secrets(self.resolve(name).get_secret_value())]
