class ConfigError(Exception):
    """A setting is unknown, malformed or unsafe. The message is one line naming the key."""
