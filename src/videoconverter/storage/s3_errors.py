"""botocore's and boto3's errors, as S3 raises them, turned into videoconverter's (see :mod:`videoconverter.errors`).

A missing bucket or key, refused credentials and an unreachable endpoint each become the error that says what to
do; the original stays as ``__cause__`` and secrets are redacted from every message.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import ClientError, HTTPClientError, NoCredentialsError, PartialCredentialsError
from botocore.exceptions import ConnectionError as BotoConnectionError

from videoconverter.aws.clients import error_code
from videoconverter.errors import (
    BucketNotFoundError,
    ConfigError,
    ObjectNotFoundError,
    TransientError,
    VideoConverterError,
)
from videoconverter.logs import redact

ACCESS_ERRORS = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"}


@contextlib.contextmanager
def translated(endpoint: str, bucket: str, key: str | None = None) -> Iterator[None]:
    """Raise videoconverter's error for any botocore or boto3 error inside, naming ``bucket``/``key`` and the
    ``endpoint`` asked."""
    where = f"s3://{bucket}/{key}" if key is not None else f"bucket {bucket!r}"
    try:
        yield
    except S3UploadFailedError as exc:  # upload_file wraps the ClientError it caught
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, ClientError):
            raise from_client_error(cause, endpoint, bucket, key, where) from cause
        raise VideoConverterError(f"upload to {where} failed: {redact(str(exc))}") from exc
    except ClientError as exc:
        raise from_client_error(exc, endpoint, bucket, key, where) from exc
    except (BotoConnectionError, HTTPClientError) as exc:
        raise TransientError(f"cannot reach S3 at {endpoint}: {redact(str(exc))}") from exc
    except (NoCredentialsError, PartialCredentialsError) as exc:
        raise ConfigError(
            f"no usable AWS credentials for S3 at {endpoint}: set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run where an IAM role applies"
        ) from exc


def from_client_error(exc: Exception, endpoint: str, bucket: str, key: str | None, where: str) -> VideoConverterError:
    """The error for an S3 error response (``ClientError``) about ``where``."""
    code = error_code(exc)
    if code == "NoSuchBucket" or (key is None and code in {"404", "NotFound"}):
        return BucketNotFoundError(no_bucket(bucket))
    if key is not None and code in {"NoSuchKey", "404", "NotFound"}:
        return ObjectNotFoundError(f"no object {where}")
    if code in ACCESS_ERRORS:
        return ConfigError(f"S3 at {endpoint} refused access to {where} ({code}): check the AWS credentials")
    if code == "BucketAlreadyExists":
        return ConfigError(f"bucket {bucket!r} belongs to another AWS account: choose another bucket name")
    return VideoConverterError(f"S3 request for {where} at {endpoint} failed: {redact(str(exc))}")


def no_bucket(bucket: str) -> str:
    return f"bucket {bucket!r} does not exist: run `videoconverter provision` first"
