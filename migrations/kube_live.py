"""Secrets from a live cluster, through the official ``kubernetes`` client.

Objects are listed page by page (``limit``/``continue``), turned back into
the manifest shape with the client's own serialiser
(``ApiClient.sanitize_for_serialization``) and read by the same code as
manifests on disk (``kube.secret_items``), so the two paths cannot disagree.
Service-account tokens and Helm release records (``helm.sh/release.v1``) are
skipped unless asked for: the first are minted by the cluster, the second are
Helm's own bookkeeping.

No API server runs in the test suite: the tests decode kubectl-made manifests
into ``V1Secret`` objects with the client's deserialiser and feed them to
:func:`items_from_objects`; the listing itself (:func:`read_cluster`) is only
exercised against a real cluster.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from secretsd.migrations.kube import secret_items
from secretsd.migrations.model import Imported

from secretsd.errors import ConfigError, Forbidden, Unavailable

__all__ = ["items_from_objects", "read_cluster"]

PAGE = 500


def items_from_objects(
    objects: Iterable[Any],
    api_client: Any,
    *,
    context: str,
    skip_types: frozenset[str] = frozenset(),
) -> Iterator[Imported]:
    """The values of ``V1Secret`` objects (as the client returns them)."""
    for obj in objects:
        raw = api_client.sanitize_for_serialization(obj)
        raw.setdefault("kind", "Secret")
        raw.setdefault("apiVersion", "v1")
        metadata = raw.get("metadata") or {}
        fingerprint = f"k8s-object:{metadata.get('uid', '')}:{metadata.get('resourceVersion', '')}"
        yield from secret_items(
            raw,
            file=None,
            where=f"cluster {context}",
            fingerprint=fingerprint,
            skip_types=skip_types,
        )


def read_cluster(
    *,
    context: str | None,
    namespaces: Sequence[str] = (),
    selector: str | None = None,
    skip_types: frozenset[str] = frozenset(),
) -> Iterator[Imported]:
    """Every Secret of the cluster (or of ``namespaces``) matching the label ``selector``."""
    try:
        from kubernetes import client as k8s
        from kubernetes import config
        from kubernetes.client.exceptions import ApiException
        from kubernetes.config.config_exception import ConfigException
        from urllib3.exceptions import HTTPError
    except ImportError:
        raise ConfigError(
            "reading a live cluster needs the kubernetes client: pip install 'secretsd[migrate]'"
        ) from None
    try:
        api_client = config.new_client_from_config(context=context)  # type: ignore[no-untyped-call]
    except (ConfigException, OSError) as error:
        raise ConfigError(
            f"cannot load the kubeconfig for context {context or '(current)'}: {error}; "
            "check KUBECONFIG and --context"
        ) from None
    api = k8s.CoreV1Api(api_client)
    name = context or "(current context)"

    def pages(ns: str | None) -> Iterator[Any]:
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"limit": PAGE, "label_selector": selector or ""}
            if token:
                kwargs["_continue"] = token
            try:
                answer = (
                    api.list_namespaced_secret(ns, **kwargs)
                    if ns
                    else api.list_secret_for_all_namespaces(**kwargs)
                )
            except ApiException as error:
                if error.status in (401, 403):
                    raise Forbidden(
                        f"the cluster ({name}) refused to list Secrets"
                        f"{' in ' + ns if ns else ''} (HTTP {error.status}); "
                        "use a context allowed to list secrets"
                    ) from None
                raise Unavailable(
                    f"listing Secrets in {name} failed (HTTP {error.status})"
                ) from None
            except (OSError, HTTPError) as error:
                raise Unavailable(f"cannot reach the cluster of {name} ({error})") from None
            yield from answer.items
            token = answer.metadata._continue if answer.metadata else None
            if not token:
                return

    chosen: list[str | None] = [*namespaces] or [None]
    for ns in chosen:
        yield from items_from_objects(pages(ns), api_client, context=name, skip_types=skip_types)
