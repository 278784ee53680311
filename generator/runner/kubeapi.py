"""A tiny Kubernetes REST client. STANDARD LIBRARY ONLY: this file runs inside the migration's
Jobs (a stock python image with the scripts mounted from a ConfigMap).

In a pod it uses the service-account token and CA; tests give a base URL (the stand-in server in
tests/fakekube.py). Paths are plain REST paths, e.g. "/api/v1/nodes".

The end-to-end tests run these scripts as processes against a real API server, the way the pod
runs them: KUBERNETES_SERVICE_HOST/PORT set, and the token minted for the Job's ServiceAccount
(TokenRequest) in a folder named by CNI_MIGRATE_SA_DIR instead of the pod's mounted one.
"""
from __future__ import annotations

import json
import os
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def sa_dir() -> str:
    return os.environ.get("CNI_MIGRATE_SA_DIR") or SA_DIR


class ApiError(Exception):
    def __init__(self, status: int, method: str, path: str, body: str):
        self.status = status
        self.method = method
        self.path = path
        self.body = body
        try:
            self.reason = json.loads(body).get("message") or body
        except (ValueError, AttributeError):
            self.reason = body
        super().__init__(f"{method} {path}: HTTP {status}: {self.reason}")


class Client:
    def __init__(self, base_url: str | None = None, token: str | None = None,
                 ca_file: str | None = None, timeout: float = 30.0, retries: int = 3,
                 sleep=time.sleep, cert_file: str | None = None, key_file: str | None = None):
        if base_url is None:
            host = os.environ.get("KUBERNETES_SERVICE_HOST")
            port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
            if not host:
                raise RuntimeError("not in a pod (KUBERNETES_SERVICE_HOST unset) and no --api")
            if ":" in host:  # IPv6 service address
                host = f"[{host}]"
            base_url = f"https://{host}:{port}"
            token_file = os.path.join(sa_dir(), "token")
            if token is None and os.path.exists(token_file):
                with open(token_file, encoding="utf-8") as f:
                    token = f.read().strip()
            ca_file = ca_file or os.path.join(sa_dir(), "ca.crt")
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.retries = retries
        self.sleep = sleep
        self._ssl = None
        if self.base_url.startswith("https://"):
            self._ssl = ssl.create_default_context(
                cafile=ca_file if ca_file and os.path.exists(ca_file) else None)
            if cert_file:   # client-certificate identity (the end-to-end tests' admin)
                self._ssl.load_cert_chain(cert_file, key_file)

    def request(self, method: str, path: str, body=None, *, query: dict | None = None,
                content_type: str = "application/json"):
        url = self.base_url + path
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", content_type)
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        # Reads, merge patches and deletes are idempotent: retry them through a blip of the API
        # server (5xx, 429 throttling, a dropped connection) rather than fail a node half-way. POSTs are not
        # retried here: their callers decide (evictions have their own backoff).
        attempts = 1 if method == "POST" else self.retries + 1
        for attempt in range(attempts):
            try:
                with urllib.request.urlopen(req, timeout=self.timeout, context=self._ssl) as resp:
                    raw = resp.read()
                return json.loads(raw) if raw else None
            except urllib.error.HTTPError as e:
                err = ApiError(e.code, method, path, e.read().decode("utf-8", "replace"))
                if (e.code < 500 and e.code != 429) or attempt == attempts - 1:
                    raise err from None
            except OSError:
                if attempt == attempts - 1:
                    raise
            self.sleep(min(2 ** attempt, 10))

    # --- verbs -------------------------------------------------------------------------------
    def get(self, path: str, **query):
        return self.request("GET", path, query=query or None)

    def get_or_none(self, path: str):
        try:
            return self.get(path)
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    def list(self, path: str, *, label_selector: str | None = None,
             field_selector: str | None = None, page_size: int = 500) -> list[dict]:
        """Every item, following `continue` tokens page by page."""
        items: list[dict] = []
        token = None
        while True:
            out = self.request("GET", path, query={
                "labelSelector": label_selector, "fieldSelector": field_selector,
                "limit": page_size, "continue": token})
            items.extend(out.get("items") or [])
            token = (out.get("metadata") or {}).get("continue")
            if not token:
                return items

    def create(self, path: str, obj: dict):
        return self.request("POST", path, obj)

    def patch(self, path: str, patch: dict):
        """JSON merge patch (RFC 7386): a None value removes the key."""
        return self.request("PATCH", path, patch, content_type="application/merge-patch+json")

    def delete(self, path: str, *, grace_seconds: int | None = None) -> bool:
        """True if deleted, False if it was already gone."""
        body = None if grace_seconds is None else {
            "apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": grace_seconds}
        try:
            self.request("DELETE", path, body)
            return True
        except ApiError as e:
            if e.status == 404:
                return False
            raise

    def evict(self, namespace: str, name: str):
        """POST an Eviction (policy/v1): the API server refuses with 429 while a
        PodDisruptionBudget allows no disruption."""
        return self.create(f"/api/v1/namespaces/{namespace}/pods/{name}/eviction", {
            "apiVersion": "policy/v1", "kind": "Eviction",
            "metadata": {"name": name, "namespace": namespace}})


def pod_path(namespace: str, name: str = "") -> str:
    return f"/api/v1/namespaces/{namespace}/pods" + (f"/{name}" if name else "")


def node_path(name: str = "") -> str:
    return "/api/v1/nodes" + (f"/{name}" if name else "")
