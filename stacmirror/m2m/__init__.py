"""Client for the USGS EarthExplorer Machine-to-Machine (M2M) JSON API."""

from .client import DEFAULT_SERVICE_URL, FileGroup, M2MClient, RetryPolicy
from .credentials import Credentials, Secret, resolve_credentials
from .errors import (
    AccessDeniedError,
    AuthError,
    AuthExpiredError,
    CredentialsError,
    DownloadLimitError,
    InputError,
    M2MError,
    ServerError,
    ThrottleError,
)
from .models import (
    Dataset,
    DatasetFilter,
    DownloadFile,
    DownloadOption,
    DownloadRequestResult,
    ReadyDownload,
    RetrieveResult,
    Scene,
    SearchPage,
)

__all__ = [
    "DEFAULT_SERVICE_URL",
    "AccessDeniedError",
    "AuthError",
    "AuthExpiredError",
    "Credentials",
    "CredentialsError",
    "Dataset",
    "DatasetFilter",
    "DownloadFile",
    "DownloadLimitError",
    "DownloadOption",
    "DownloadRequestResult",
    "FileGroup",
    "InputError",
    "M2MClient",
    "M2MError",
    "ReadyDownload",
    "RetrieveResult",
    "RetryPolicy",
    "Scene",
    "SearchPage",
    "Secret",
    "ServerError",
    "ThrottleError",
    "resolve_credentials",
]
