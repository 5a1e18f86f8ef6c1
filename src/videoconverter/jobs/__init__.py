"""Job records: one per (key, source ETag, rendition), with state, progress, errors and log lines.

The URL's scheme picks the backend (:data:`BACKENDS`); its module is imported only when a URL names it, so the
optional dependencies (psycopg, boto3) stay optional.
"""

from videoconverter.jobs.base import JobId, JobLogLine, JobRecord, JobState, JobStore, JobStoreBackend
from videoconverter.registry import Registry

#: URL scheme(s) -> ``module:Class [extra]`` of the job store they open (the pip extra that installs what it needs).
BACKENDS = Registry[JobStoreBackend](
    "job store",
    {
        "dynamodb": "videoconverter.jobs.dynamodb:DynamoDBJobStore [aws]",
        ("postgresql", "postgres"): "videoconverter.jobs.postgres:PostgresJobStore [postgres]",
        "sqlite": "videoconverter.jobs.sqlite:SQLiteJobStore",
    },
)


def open_job_store(url: str) -> JobStore:
    """The job store ``url`` names, opened by its class's ``from_url``."""
    return BACKENDS.backend_class(url).from_url(url)


__all__ = ["JobId", "JobLogLine", "JobRecord", "JobState", "JobStore", "JobStoreBackend"]
