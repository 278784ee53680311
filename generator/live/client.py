"""One connection to an API server through the official `kubernetes` client.

The client is used for what it does well (kubeconfig parsing, exec/OIDC credentials, TLS) and
asked for raw JSON (`_preload_content=False`): its typed models would drop fields they do not
know (Calico objects, fields newer than the client). Every failure becomes a one-line UserError
naming the context and, for 403s, the missing verb and resource.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from ..errors import UserError
from .resources import Resource

DEFAULT_PAGE_SIZE = 500
DEFAULT_TIMEOUT = 30.0          # seconds per request (connect and read)
CLUSTERROLE_HINT = ("grant the read-only ClusterRole printed by "
                    "`cni-migrate snapshot --print-clusterrole`")

# typed client class per API group (core, apps, ...); custom groups go through CustomObjectsApi
_TYPED_APIS = {"": "CoreV1Api", "apps": "AppsV1Api", "policy": "PolicyV1Api",
               "networking.k8s.io": "NetworkingV1Api"}


class Cluster:
    """A connected API server: `source` names it in messages ("context kind-canal")."""

    def __init__(self, kubeconfig: str | None = None, context: str | None = None, *,
                 timeout: float = DEFAULT_TIMEOUT):
        from kubernetes import client as k8s_client  # live path only: costs ~0.3 s

        self._k = k8s_client
        self.timeout = timeout
        self.api, self.context = _connect(kubeconfig, context)
        self.source = f"context {self.context}"
        self.host = self.api.configuration.host
        self._apis: dict[str, object] = {}

    # ---- discovery ----------------------------------------------------------------------------

    def api_groups(self) -> dict[str, list[str]]:
        """group name -> served versions (GET /apis)."""
        data = self._call("/apis", lambda: self._typed("ApisApi").get_api_versions(
            _preload_content=False, _request_timeout=self.timeout))
        return {g["name"]: [v["version"] for v in g.get("versions") or []]
                for g in data.get("groups") or []}

    def served_resources(self, group: str, version: str, *,
                         unavailable_ok: bool = False) -> set[str] | None:
        """Plural names served in group/version (GET /apis/g/v); None if it is not served
        (or, with unavailable_ok, if its aggregated API server does not answer: 502-504)."""
        data = self._call(f"/apis/{group}/{version}", lambda: self._typed(
            "CustomObjectsApi").get_api_resources(group, version, _preload_content=False,
                                                   _request_timeout=self.timeout),
            missing_ok=True, unavailable_ok=unavailable_ok)
        if data is None:
            return None
        return {r["name"] for r in data.get("resources") or [] if "/" not in r["name"]}

    # ---- lists --------------------------------------------------------------------------------

    def list_objects(self, res: Resource, namespace: str | None = None, *,
                     page_size: int = DEFAULT_PAGE_SIZE,
                     on_page=None) -> list[dict] | None:
        """Every object of one kind (all namespaces unless one is given), page by page.
        None when the resource is optional and not served (e.g. no Calico CRDs).
        on_page(count so far) is called after each page (progress)."""
        items: list[dict] = []
        token: str | None = None
        restarted = False
        path = res.path(namespace)
        while True:
            try:
                page = self._call(path, lambda: self._list_page(res, namespace, page_size, token),
                                  res=res, namespace=namespace, missing_ok=res.optional)
            except _Expired:
                # The continue token outlived the server's compaction window: start over once.
                if restarted:
                    raise UserError(f"the list of {res.qualified} kept changing while paging; "
                                    "retry, or raise --page-size", file=self.source) from None
                items, token, restarted = [], None, True
                continue
            if page is None:
                return None
            items.extend(page.get("items") or [])
            if on_page is not None:
                on_page(len(items))
            token = (page.get("metadata") or {}).get("continue") or None
            if not token:
                return items

    def _list_page(self, res: Resource, namespace: str | None, limit: int, token: str | None):
        kw = {"limit": limit, "_preload_content": False, "_request_timeout": self.timeout}
        if token:
            kw["_continue"] = token
        if res.typed is None:
            api = self._typed("CustomObjectsApi")
            if namespace:
                return api.list_namespaced_custom_object(res.group, res.version, namespace,
                                                         res.plural, **kw)
            return api.list_cluster_custom_object(res.group, res.version, res.plural, **kw)
        api = self._typed(_TYPED_APIS[res.group])
        if namespace:
            return getattr(api, f"list_namespaced_{res.typed}")(namespace, **kw)
        if res.namespaced:
            return getattr(api, f"list_{res.typed}_for_all_namespaces")(**kw)
        return getattr(api, f"list_{res.typed}")(**kw)

    # ---- plumbing -----------------------------------------------------------------------------

    def _typed(self, name: str):
        api = self._apis.get(name)
        if api is None:
            api = self._apis[name] = getattr(self._k, name)(self.api)
        return api

    def _call(self, path: str, fn, *, res: Resource | None = None, namespace: str | None = None,
              missing_ok: bool = False, unavailable_ok: bool = False):
        """Run one request; JSON body as a dict, None for an allowed 404, else a UserError."""
        import urllib3
        from kubernetes.client.exceptions import ApiException
        try:
            resp = fn()
            try:
                body = resp.data
            finally:
                resp.release_conn()
        except ApiException as e:
            if e.status == 404 and missing_ok:
                return None
            if e.status in (502, 503, 504) and unavailable_ok:
                return None
            if e.status == 410 and res is not None:
                raise _Expired() from None
            raise self._api_error(e, path, res, namespace) from None
        except urllib3.exceptions.HTTPError as e:
            raise self._transport_error(e, path) from None
        try:
            return json.loads(body)
        except ValueError:
            raise UserError(f"GET {path} did not return JSON (is {self.host} an API server?)",
                            file=self.source) from None

    def _api_error(self, e, path: str, res: Resource | None, namespace: str | None) -> UserError:
        status = e.status
        if not status:  # no HTTP answer: the client wraps TLS failures this way
            reason = _one_line(e.reason or e)
            if "SSL" in reason:
                return UserError(f"TLS error talking to {self.host}: {reason}; check the "
                                 "cluster's certificate-authority in the kubeconfig",
                                 file=self.source)
            return UserError(f"GET {path} failed: {reason}", file=self.source)
        if status == 401:
            return UserError(f"the API server at {self.host} rejected the credentials (401 "
                             "Unauthorized): the token or certificate is invalid or expired; "
                             "log in again or refresh the kubeconfig", file=self.source)
        if status == 403:
            if res is None:
                what = f"get {path} (discovery)"
            else:
                scope = f"in namespace {namespace}" if namespace else (
                    "in all namespaces" if res.namespaced else "(cluster-scoped)")
                what = f"list {res.qualified} {scope}"
            return UserError(f"forbidden: the credentials may not {what}; {CLUSTERROLE_HINT}",
                             file=self.source)
        if status == 404:
            return UserError(f"the API server does not serve {path} (404)", file=self.source)
        reason = e.reason or ""
        detail = _status_message(e.body)
        return UserError(f"GET {path} failed: {status} {reason}"
                         + (f": {detail}" if detail else ""), file=self.source)

    def _transport_error(self, e, path: str) -> UserError:
        import urllib3
        exc = urllib3.exceptions
        reason = getattr(e, "reason", None) or e
        if isinstance(reason, exc.NewConnectionError) or isinstance(e, exc.NewConnectionError):
            # checked first: urllib3 makes NewConnectionError a subclass of ConnectTimeoutError
            return UserError(f"cannot reach the API server at {self.host}: {_short(reason)}",
                             file=self.source)
        if isinstance(reason, exc.ConnectTimeoutError) or isinstance(e, exc.ConnectTimeoutError):
            return UserError(f"timed out connecting to the API server at {self.host} "
                             f"(after {self.timeout:g}s)", file=self.source)
        if isinstance(reason, exc.ReadTimeoutError) or isinstance(e, exc.ReadTimeoutError) or \
                isinstance(e, exc.TimeoutError):
            return UserError(f"the API server at {self.host} did not answer GET {path} within "
                             f"{self.timeout:g}s; retry with a larger --timeout or smaller "
                             "--page-size", file=self.source)
        if isinstance(reason, exc.SSLError) or isinstance(e, exc.SSLError):
            return UserError(f"TLS error talking to {self.host}: {_short(reason)}; check the "
                             "cluster's certificate-authority in the kubeconfig",
                             file=self.source)
        return UserError(f"cannot reach the API server at {self.host}: {_short(reason)}",
                         file=self.source)


class _Expired(Exception):
    """410 Gone on a paged list: the continue token expired."""


def _short(e) -> str:
    text = str(e)
    # urllib3 wraps messages as "HTTPConnection(host=.., port=..): Failed to establish a new
    # connection: [Errno 111] Connection refused"; the host is already in our message.
    for marker in ("Failed to establish a new connection: ", ">: ", "): "):
        if marker in text:
            text = text.split(marker, 1)[1]
            break
    return " ".join(text.split())[:200]


def _status_message(body) -> str:
    if not body:
        return ""
    try:
        data = json.loads(body)
        return " ".join(str(data.get("message", "")).split())[:200]
    except (ValueError, AttributeError):
        return ""


# ---- kubeconfig ---------------------------------------------------------------------------------

def _connect(kubeconfig: str | None, context: str | None):
    """(ApiClient, context name). In a Pod with no kubeconfig, use the service account."""
    from kubernetes import client as k8s_client, config as k8s_config
    from kubernetes.config.config_exception import ConfigException

    where = kubeconfig or os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
    if kubeconfig is not None:
        path = Path(kubeconfig)
        if not path.exists():
            raise UserError("kubeconfig not found", file=kubeconfig)
        if not path.is_file():
            raise UserError("kubeconfig is not a file", file=kubeconfig)
        try:
            path.read_bytes()
        except OSError as e:
            raise UserError(f"cannot read kubeconfig: {e.strerror or e}", file=kubeconfig) from None
    elif not _any_kubeconfig(where) and os.environ.get("KUBERNETES_SERVICE_HOST") \
            and context is None:
        try:
            cfg = k8s_client.Configuration()
            k8s_config.load_incluster_config(client_configuration=cfg)
        except ConfigException as e:
            raise UserError(f"in-cluster configuration unusable: {e}") from None
        return _client(k8s_client, cfg), "in-cluster"
    if kubeconfig is None and not _any_kubeconfig(where):
        raise UserError("no kubeconfig found; pass --kubeconfig FILE or set KUBECONFIG",
                        file=where)
    try:
        contexts, active = k8s_config.list_kube_config_contexts(config_file=kubeconfig)
    except ConfigException as e:
        if "current-context" not in str(e):
            raise UserError(f"unusable kubeconfig: {_one_line(e)}", file=where) from None
        if context is None:
            raise UserError("the kubeconfig has no current-context; pass --context",
                            file=where) from None
        contexts, active = None, None   # --context given: loading below checks it exists
    except Exception as e:  # malformed YAML and the like surface as various errors
        raise UserError(f"unreadable kubeconfig: {e.__class__.__name__}: {_one_line(e)}",
                        file=where) from None
    names = [c.get("name") for c in contexts or []]
    if context is not None and contexts is not None and context not in names:
        raise UserError(f"no context {context!r} in the kubeconfig (it has: "
                        f"{', '.join(sorted(n for n in names if n)) or 'none'})", file=where)
    name = context or (active or {}).get("name")
    if not name:
        raise UserError("the kubeconfig has no current-context; pass --context", file=where)
    # The client reports a failing exec credential plugin (aws, gke-gcloud-auth-plugin...)
    # with logging.error and carries on without credentials; catch it here instead.
    plugin = _ErrorCapture()
    root = logging.getLogger()
    root.addHandler(plugin)
    try:
        cfg = k8s_client.Configuration()
        k8s_config.load_kube_config(config_file=kubeconfig, context=name,
                                    client_configuration=cfg, persist_config=False)
    except ConfigException as e:
        raise UserError(f"unusable kubeconfig: {_one_line(e)}", file=where,
                        obj=f"context {name}") from None
    except Exception as e:  # exec plugins, unreadable certificate files...
        raise UserError(f"cannot load credentials: {e.__class__.__name__}: {_one_line(e)}",
                        file=where, obj=f"context {name}") from None
    finally:
        root.removeHandler(plugin)
    if plugin.messages:
        raise UserError(f"the credential plugin failed: {_one_line(plugin.messages[0])}",
                        file=where, obj=f"context {name}")
    return _client(k8s_client, cfg), name


class _ErrorCapture(logging.Handler):
    """Collects ERROR records while the kubeconfig loads (and, being a root handler, keeps
    logging from configuring itself to print them)."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _client(k8s_client, cfg):
    # One retry: an unreachable server should fail in seconds, not after urllib3's default 3
    # attempts per request.
    cfg.retries = 1
    api = k8s_client.ApiClient(configuration=cfg)
    api.user_agent = "cni-migrate (read-only)"
    return api


def _any_kubeconfig(where: str) -> bool:
    return any(Path(p).is_file() for p in where.split(os.pathsep) if p)


def _one_line(e) -> str:
    return " ".join(str(e).split())[:300]
