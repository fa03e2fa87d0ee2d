"""The project's exception hierarchy.

`SeamError` is the base.  `SourceUnavailableError` is transient (Airflow retries it);
`DataError` and its subclasses mean the data is wrong and retrying cannot help
(the DAG layer turns them into a fail-without-retry).  `ConfigError` is a
mistake in the configuration file or the command line.
"""

from __future__ import annotations


class SeamError(Exception):
    """Base class of every error the project raises on purpose."""


class ConfigError(SeamError):
    """The configuration (file, environment or command line) is invalid."""


class SourceUnavailableError(SeamError):
    """A database could not be reached or refused the login; may succeed on retry."""


class DataError(SeamError):
    """The data violates a contract or a quality gate; retrying will not help."""


class SchemaDriftError(DataError):
    """A source table changed shape in a way that breaks the pipeline."""


class QualityGateError(DataError):
    """An `error`-severity data-quality check failed."""


class LoadError(SeamError):
    """Writing results back into a database failed permanently."""


class StepSkipped(SeamError):
    """A step did not run because a dataset it needs failed an `error` quality gate tonight."""
