"""The Hub package's exception, and how a huggingface_hub / HTTP / network failure becomes one message that names the
URL, the status and the fix. In its own module so folder reading, the card and the upload can all raise HubError
without importing one another.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from ltx_train_lib.errors import LtxTrainError


class HubError(LtxTrainError):
    """The Hub upload cannot be done or failed (no token, bad repo id, network or HTTP error)."""


def _hint_for_status(status: int, repo_id: str) -> str:
    namespace = repo_id.split("/")[0]
    if status == 401:
        return (
            "the token was rejected (invalid or expired); "
            "create a write token at https://huggingface.co/settings/tokens "
            "and set HF_TOKEN or run `hf auth login`"
        )
    if status == 403:
        return (
            f"the token may not write to '{namespace}' (read-only token, or no write access to that organisation); "
            "use a write token with access to it, or a repo id under your own user name"
        )
    if status == 404:
        return f"'{repo_id}' was not found or is not visible to this token; check the repo id and the token's owner"
    if status == 409:
        return "the Hub reported a conflict (a concurrent change); rerun the push"
    if status == 413:
        return "a file is too large for a regular upload; check the Hub's file size limits"
    if status == 429:
        return "the Hub is rate-limiting this token; wait a few minutes and rerun the push"
    if status >= 500:
        return "the Hub had a server error; wait and rerun the push (nothing was committed)"
    return "rerun the push; if it persists, check https://status.huggingface.co"


@contextlib.contextmanager
def wrap_hub_errors(action: str, repo_id: str, endpoint: str) -> Iterator[None]:
    """Turn huggingface_hub/HTTP/network errors into HubError with URL, status and a fix."""
    from huggingface_hub import errors as hf_errors

    try:
        yield
    except hf_errors.OfflineModeIsEnabled:
        raise HubError(f"cannot {action}: HF_HUB_OFFLINE is set; unset it to upload to {endpoint}") from None
    except hf_errors.HfHubHTTPError as exc:
        response = exc.response
        status = response.status_code if response is not None else 0
        url = str(response.request.url) if response is not None and response.request is not None else endpoint
        detail = f" ({exc.server_message.strip()})" if getattr(exc, "server_message", None) else ""
        raise HubError(
            f"cannot {action} for {repo_id}: HTTP {status} from {url}{detail}; {_hint_for_status(status, repo_id)}"
        ) from None
    except OSError as exc:
        if exc.filename:  # a local file, not the network (e.g. a weight file removed while uploading)
            raise HubError(
                f"cannot {action} for {repo_id}: cannot read {exc.filename} ({exc.strerror}); "
                "check that the output folder is complete and readable, then rerun the push"
            ) from None
        raise HubError(
            f"cannot {action} for {repo_id}: could not reach {endpoint} ({type(exc).__name__}: {exc}); check the "
            "network connection, proxy settings (HTTPS_PROXY) and HF_ENDPOINT, then rerun the push"
        ) from None
    except hf_errors.HTTPError as exc:  # connection refused, DNS, TLS, timeouts
        raise HubError(
            f"cannot {action} for {repo_id}: could not reach {endpoint} ({type(exc).__name__}: {exc}); check the "
            "network connection, proxy settings (HTTPS_PROXY) and HF_ENDPOINT, then rerun the push"
        ) from None
    except ValueError as exc:  # huggingface_hub raises ValueError for e.g. invalid README metadata
        raise HubError(f"cannot {action} for {repo_id}: {exc}") from None
