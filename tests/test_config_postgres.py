"""The postgres store's settings: a DSN without a secret, the password from a private file,
never in a message."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import ConfigError, load_settings, read_password_file
from signaling.app import make_store
from signaling.store.postgres import PostgresStore

SECRET = "s3cret-Horse-battery"


def postgres(environ: dict[str, str]) -> dict[str, str]:
    return {"TELECONSULT_STORAGE_BACKEND": "postgres", **environ}


def test_a_dsn_without_a_password_is_taken() -> None:
    dsn = "host=db.clinic.example dbname=teleconsult user=teleconsult sslmode=verify-full"
    settings = load_settings(environ=postgres({"TELECONSULT_STORAGE_POSTGRES_DSN": dsn}))
    assert settings.storage.postgres_dsn == dsn


@pytest.mark.parametrize(
    "dsn",
    [
        f"host=db dbname=t user=u password={SECRET}",
        f"postgresql://u:{SECRET}@db/t",
        "",
        "host='unterminated",
    ],
)
def test_a_dsn_with_a_password_or_none_at_all_is_refused_without_repeating_it(dsn: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(environ=postgres({"TELECONSULT_STORAGE_POSTGRES_DSN": dsn}))
    assert "storage.postgres_dsn" in str(refused.value)
    assert SECRET not in str(refused.value)


def test_the_password_comes_from_a_private_file(tmp_path: Path) -> None:
    path = tmp_path / "postgres.password"
    path.write_text(SECRET + "\n")
    path.chmod(0o600)
    assert read_password_file(path) == SECRET
    path.chmod(0o640)
    with pytest.raises(ConfigError, match="chmod 600") as refused:
        read_password_file(path)
    assert SECRET not in str(refused.value)
    path.write_text("\n")
    path.chmod(0o600)
    with pytest.raises(ConfigError, match="empty"):
        read_password_file(path)


def test_the_store_gets_the_password_apart_from_the_dsn(tmp_path: Path) -> None:
    path = tmp_path / "postgres.password"
    path.write_text(SECRET)
    path.chmod(0o600)
    settings = load_settings(
        environ=postgres(
            {
                "TELECONSULT_STORAGE_POSTGRES_DSN": "host=127.0.0.1 dbname=t user=u",
                "TELECONSULT_STORAGE_POSTGRES_PASSWORD_FILE": str(path),
            }
        )
    )
    store = make_store(settings)
    assert isinstance(store, PostgresStore)
    assert SECRET not in store.dsn
