"""The project's exception hierarchy: every error says whether retrying can help.

`SeamError` is the base.  Each class carries `transient` (True: the one retry layer of that
call path may try again, with backoff) and the CLI's `exit_code`:

| error                     | transient | exit | meaning                                                  |
|---------------------------|-----------|------|----------------------------------------------------------|
| `ConfigError`             | no        | 2    | the config file, the environment or the command line     |
| `SourceUnavailableError`  | yes       | 3    | a database or mail server could not be reached           |
| `DeliveryError`           | no        | 3    | an alert reached some of its channels, not all           |
| `DataError` and subclasses| no        | 4    | the data breaks a contract or a quality gate             |
| `MissingInputError`       | no        | 4    | an input another step should have written is not there   |
| `LoadError`               | no        | 4    | a database refused the night's rows                      |
| `RunFailedError`          | no        | *    | the night ran to its end, but steps failed: the first one's code |
| any other exception       | -         | 1    | a bug: the message and traceback are logged              |

The DAG layer turns permanent errors into Airflow's fail-without-retry; transient ones are
retried by Airflow (task retries with exponential backoff) and nowhere else; the CLI exits 3.
"""

from __future__ import annotations


class SeamError(Exception):
    """Base class of every error the project raises on purpose."""

    transient: bool = False
    exit_code: int = 1


class ConfigError(SeamError):
    """The configuration (file, environment or command line) is invalid."""

    exit_code = 2


class SourceUnavailableError(SeamError):
    """A database could not be reached or refused the login; may succeed on retry."""

    transient = True
    exit_code = 3


class DeliveryError(SeamError):
    """An alert reached some of its channels but not every one; a retry would repeat it to the
    ones that took it, so it is not retried: the message names the channels that missed it."""

    exit_code = 3


class DataError(SeamError):
    """The data violates a contract or a quality gate; retrying will not help."""

    exit_code = 4


class SchemaDriftError(DataError):
    """A source table changed shape in a way that breaks the pipeline."""


class SchemaConflictError(DataError):
    """The sources of one dataset give a column different types: their union has no one type."""


class QualityGateError(DataError):
    """An `error`-severity data-quality check failed."""


class MissingInputError(DataError):
    """A lake partition or output a step needs is not there; the message names the step to run."""


class LoadError(DataError):
    """A database refused the night's rows permanently (constraint, bad value); nothing was kept."""


class StepSkipped(SeamError):
    """A step did not run because a dataset it needs failed an `error` quality gate tonight."""


class RunFailedError(SeamError):
    """A whole night ran to its end, but one or more steps failed (named in the message).

    Exits with the code of the first failure, so a scheduler sees the same class of problem.
    """

    def __init__(self, message: str, *, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code
