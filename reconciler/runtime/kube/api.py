"""Talking to the Kubernetes API through the ``kubernetes`` client: configuration and raw JSON requests.

The watcher and the status writer need paths the typed API classes do not cover uniformly (custom resources,
streaming watches, merge patches on subresources), so they go through :class:`kubernetes.client.ApiClient`
directly: the client still does configuration (in-cluster service account or kubeconfig), TLS, authentication
and connection pooling; this module only builds paths and reads JSON.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import urllib3
from kubernetes import client, config


class ApiError(Exception):
    """A non-2xx answer (``status`` > 0) or a transport failure (``status`` 0). ``reason`` is the Status reason."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}" if status else f"API unreachable: {message}")
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def transient(self) -> bool:
        return self.status == 0 or self.status == 429 or self.status >= 500


def make_client(kubeconfig: str | None = None, context: str | None = None, pool_size: int = 32) -> client.ApiClient:
    """In-cluster configuration inside a pod (unless a kubeconfig is given), else the kubeconfig.

    The connection pool is sized for one long-lived watch per resource plus the requests around them.
    """
    cfg = client.Configuration()
    if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config(client_configuration=cfg)
    else:
        config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=cfg)
    cfg.connection_pool_maxsize = pool_size
    return client.ApiClient(cfg)


def _url(api: client.ApiClient, path: str, query: dict[str, Any] | None) -> tuple[str, dict[str, str]]:
    headers: dict[str, str] = {}
    _, url, headers, _, _ = api.param_serialize(
        method="GET", resource_path=path, header_params={}, auth_settings=["BearerToken"],
    )
    if query:
        url += ("&" if "?" in url else "?") + urlencode(query)
    return url, headers


def request(
    api: client.ApiClient,
    method: str,
    path: str,
    *,
    query: dict[str, Any] | None = None,
    body: Any = None,
    content_type: str = "application/json",
    timeout: float | tuple[float, float] = 30.0,
) -> Any:
    """One JSON request; returns the decoded body. Raises :class:`ApiError`."""
    url, headers = _url(api, path, query)
    headers = dict(headers, Accept="application/json")
    data = None
    if body is not None:
        headers["Content-Type"] = content_type
        data = body  # the client serialises it (any content type naming json)
    try:
        resp = api.call_api(method, url, header_params=headers, body=data, _request_timeout=timeout)
        raw = resp.read()
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise ApiError(0, "Unreachable", str(exc)) from None
    except client.ApiException as exc:  # transport problems the client wraps (TLS)
        raise ApiError(exc.status or 0, str(exc.reason), str(exc.body or exc)) from None
    if not 200 <= resp.status < 300:
        raise _error(resp.status, raw)
    return json.loads(raw) if raw else None


def _error(status: int, raw: bytes) -> ApiError:
    try:
        st = json.loads(raw)
        return ApiError(status, str(st.get("reason") or status), str(st.get("message") or ""))
    except (ValueError, AttributeError):
        return ApiError(status, str(status), raw[:200].decode("utf-8", "replace"))


class Stream:
    """A watch response: iterate :meth:`events`; :meth:`close` from another thread unblocks a pending read."""

    def __init__(self, resp: Any) -> None:
        self._resp = resp

    def events(self) -> Iterator[dict[str, Any]]:
        buf = b""
        try:
            for chunk in self._resp.stream(65536, decode_content=True):
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if line.strip():
                        yield json.loads(line)
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            raise ApiError(0, "StreamBroken", str(exc)) from None
        if buf.strip():
            yield json.loads(buf)

    def close(self) -> None:
        try:
            self._resp.shutdown()
        except Exception:  # noqa: BLE001 - best effort from another thread
            pass
        try:
            self._resp.release_conn()
        except Exception:  # noqa: BLE001
            pass


def watch(api: client.ApiClient, path: str, query: dict[str, Any], read_timeout: float) -> Stream:
    """Open a watch stream (``watch=true`` is added). Raises :class:`ApiError` for a non-2xx answer."""
    url, headers = _url(api, path, dict(query, watch="true"))
    headers = dict(headers, Accept="application/json")
    try:
        resp = api.call_api("GET", url, header_params=headers, _request_timeout=(10.0, read_timeout))
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise ApiError(0, "Unreachable", str(exc)) from None
    if not 200 <= resp.status < 300:
        raise _error(resp.status, resp.read())
    return Stream(resp.response)
