"""Errors that reach the user as one clear message, without a traceback."""


class AlertbenchError(Exception):
    """An error whose message says what went wrong and what to do about it."""


class ConfigError(AlertbenchError):
    """The configuration, an inventory or a flag is wrong."""


class JavaError(AlertbenchError):
    """Java is missing or too old."""


class FetchError(AlertbenchError):
    """Kafka (or another runtime) could not be fetched."""


class ClusterError(AlertbenchError):
    """A cluster could not be started, reached or stopped."""
