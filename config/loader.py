"""Build Settings from defaults, an optional TOML file and ``TELECONSULT_*`` variables.

Every value is checked against the type of its dataclass field; an unknown section or key is
an error rather than silently ignored, so a typo in a deployment never goes unnoticed.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from config.errors import ConfigError
from config.settings import Settings

ENV_PREFIX = "TELECONSULT_"


def _section_types() -> dict[str, type[Any]]:
    hints = typing.get_type_hints(Settings)
    return {f.name: hints[f.name] for f in dataclasses.fields(Settings)}


def _describe(tp: Any) -> str:
    if tp is bool:
        return "true or false"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if tp is str:
        return "a string"
    return "a list of strings"


def _coerce(key: str, tp: Any, value: Any, from_env: bool) -> Any:
    if from_env and isinstance(value, str):
        text = value.strip()
        if tp is bool:
            lowered = text.lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ConfigError(f"{key}: expected {_describe(tp)}, got {text!r}")
        if tp is int:
            try:
                return int(text)
            except ValueError:
                raise ConfigError(f"{key}: expected {_describe(tp)}, got {text!r}") from None
        if tp is float:
            try:
                return float(text)
            except ValueError:
                raise ConfigError(f"{key}: expected {_describe(tp)}, got {text!r}") from None
        if tp is str:
            return text
        return tuple(item.strip() for item in text.split(",") if item.strip())
    ok: bool
    if tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok:
            value = float(value)
    elif tp is str:
        ok = isinstance(value, str)
    else:
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        if ok:
            value = tuple(value)
    if not ok:
        raise ConfigError(f"{key}: expected {_describe(tp)}, got {value!r}")
    return value


def _apply(
    settings: Settings, overrides: Mapping[str, Mapping[str, Any]], from_env: bool
) -> Settings:
    sections = _section_types()
    replaced: dict[str, Any] = {}
    for section_name, values in overrides.items():
        if section_name not in sections:
            known = ", ".join(sorted(sections))
            raise ConfigError(f"{section_name}: unknown section (known sections: {known})")
        section_type = sections[section_name]
        hints = typing.get_type_hints(section_type)
        field_names = {f.name for f in dataclasses.fields(section_type)}
        if not isinstance(values, Mapping):
            raise ConfigError(f"{section_name}: expected a table of settings")
        changes: dict[str, Any] = {}
        for key, value in values.items():
            full = f"{section_name}.{key}"
            if key not in field_names:
                raise ConfigError(
                    f"{full}: unknown setting (known: {', '.join(sorted(field_names))})"
                )
            changes[key] = _coerce(full, hints[key], value, from_env)
        current = replaced.get(section_name, getattr(settings, section_name))
        replaced[section_name] = dataclasses.replace(current, **changes)
    return dataclasses.replace(settings, **replaced)


def _env_overrides(environ: Mapping[str, str]) -> dict[str, dict[str, str]]:
    sections = _section_types()
    result: dict[str, dict[str, str]] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        rest = name[len(ENV_PREFIX) :].lower()
        section, _, key = rest.partition("_")
        if section not in sections or not key:
            raise ConfigError(
                f"{name}: unknown environment setting "
                f"(expected {ENV_PREFIX}<SECTION>_<KEY>, sections: {', '.join(sorted(sections))})"
            )
        result.setdefault(section, {})[key] = value
    return result


def load_settings(
    config_file: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Defaults, then ``config_file`` (TOML), then environment; validated."""
    settings = Settings()
    if config_file is not None:
        path = Path(config_file)
        try:
            with path.open("rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"--config: file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"--config: {path} is not valid TOML ({exc})") from None
        settings = _apply(settings, data, from_env=False)
    env = os.environ if environ is None else environ
    settings = _apply(settings, _env_overrides(env), from_env=True)
    return settings.validate()
