"""Secret resolution from a folder and an injected environment mapping."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.dispatch.delivery_errors import InvalidJobError, SecretNotConfiguredError
from app.dispatch.secrets import SecretResolver
from app.dispatch_settings import DispatchSettings


def test_folder_file_is_read_and_stripped(resolver: SecretResolver, secrets_dir: Path) -> None:
    """A file named like the secret gives its value without the trailing newline."""
    (secrets_dir / "DEPLOY_HOOK_SECRET").write_text("s3cret\n")
    assert resolver.resolve("DEPLOY_HOOK_SECRET").get_secret_value() == "s3cret"


def test_environment_is_used_with_prefix(resolver: SecretResolver) -> None:
    """Without a file, HOOKSTREAM_SECRET_<NAME> from the mapping is used."""
    assert resolver.resolve("ENV_ONLY").get_secret_value() == "from-env"


def test_folder_wins_over_environment(resolver: SecretResolver, secrets_dir: Path) -> None:
    """The folder is consulted first."""
    (secrets_dir / "ENV_ONLY").write_text("from-file")
    assert resolver.resolve("ENV_ONLY").get_secret_value() == "from-file"


def test_unprefixed_environment_is_not_reachable(secrets_dir: Path) -> None:
    """An automation cannot name an arbitrary process variable such as AWS keys."""
    res = SecretResolver(secrets_dir=secrets_dir, environ={"AWS_SECRET_ACCESS_KEY": "x"})
    with pytest.raises(SecretNotConfiguredError):
        res.resolve("AWS_SECRET_ACCESS_KEY")


def test_missing_secret_reason(resolver: SecretResolver) -> None:
    """A missing secret raises the typed error with the documented reason."""
    with pytest.raises(SecretNotConfiguredError) as info:
        resolver.resolve("NOPE")
    assert info.value.reason == "secret 'NOPE' is not configured"


def test_empty_file_counts_as_missing(resolver: SecretResolver, secrets_dir: Path) -> None:
    """A blank file does not yield an empty secret."""
    (secrets_dir / "BLANK").write_text("\n")
    with pytest.raises(SecretNotConfiguredError):
        resolver.resolve("BLANK")


@pytest.mark.parametrize("name", ["../etc/passwd", "a/b", ".hidden", "", "x" * 200, "a..b"])
def test_path_like_names_are_refused(resolver: SecretResolver, name: str) -> None:
    """Names that could escape the folder are invalid jobs, not file reads."""
    with pytest.raises(InvalidJobError, match="invalid secret name"):
        resolver.resolve(name)


def test_rotation_value_splits(resolver: SecretResolver, secrets_dir: Path) -> None:
    """A value with several whitespace-separated secrets yields them in order."""
    (secrets_dir / "ROT").write_text("whsec_bmV3 whsec_b2xk\n")
    values = [s.get_secret_value() for s in resolver.resolve_many("ROT")]
    assert values == ["whsec_bmV3", "whsec_b2xk"]


def test_value_never_in_repr(resolver: SecretResolver, secrets_dir: Path) -> None:
    """Neither the SecretStr nor the resolver shows the value."""
    (secrets_dir / "S").write_text("topsecret")
    value = resolver.resolve("S")
    assert "topsecret" not in repr(value)
    assert "topsecret" not in str(value)
    assert "topsecret" not in repr(resolver)


def test_from_settings_uses_folder_and_prefix(secrets_dir: Path) -> None:
    """from_settings wires the configured folder and env prefix."""
    (secrets_dir / "F").write_text("file-value")
    settings = DispatchSettings(secrets_dir=secrets_dir, secrets_env_prefix="MY_")
    res = SecretResolver.from_settings(settings, {"MY_E": "env-value"})
    assert res.resolve("F").get_secret_value() == "file-value"
    assert res.resolve("E").get_secret_value() == "env-value"


def test_no_folder_configured() -> None:
    """Without a folder only the environment is consulted."""
    res = SecretResolver(environ={"HOOKSTREAM_SECRET_T": "v"})
    assert res.resolve("T").get_secret_value() == "v"
