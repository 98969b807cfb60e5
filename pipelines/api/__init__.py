"""The Volumes API client, plain Python (no Dagster): `VolumesClient` streams `GET /v1/volumes`
to a file within one deadline. The Dagster resource that configures it is
`pipelines.resources.VolumeApi`.

- `auth`: the key, bound to the configured origin; URLs as they may appear in messages.
- `retry`: what is retried, how long to wait (`Retry-After`), and how far an attempt got.
- `client`: the client itself and its errors.
"""

from pipelines.api.client import ApiError, ContractError, FetchResult, VolumesClient

__all__ = ["ApiError", "ContractError", "FetchResult", "VolumesClient"]
