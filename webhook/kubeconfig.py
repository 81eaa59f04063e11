"""Where the Kubernetes API is: --kubeconfig, in-cluster, else $KUBECONFIG or ~/.kube/config."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from webhook.errors import UsageError


async def load_kube_configuration(kubeconfig: str | None) -> object:
    """--kubeconfig, else in-cluster, else $KUBECONFIG or ~/.kube/config, like kubectl."""
    from kubernetes_asyncio import client, config

    configuration = client.Configuration()
    in_cluster = bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
    default_file = os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
    try:
        if kubeconfig:
            await config.load_kube_config(
                config_file=kubeconfig, client_configuration=configuration
            )
        elif in_cluster:
            config.load_incluster_config(client_configuration=configuration)
        elif any(Path(path).is_file() for path in default_file.split(os.pathsep)):
            await config.load_kube_config(
                config_file=default_file, client_configuration=configuration
            )
        else:
            raise UsageError(
                "no Kubernetes API to read ServiceAccounts from: pass --kubeconfig, run in a "
                "cluster, or pass --service-accounts FILE (or --dev)"
            )
    except (
        config.ConfigException,
        OSError,
        ValueError,
        TypeError,
        KeyError,
        yaml.YAMLError,
    ) as exc:
        detail = " ".join(str(exc).split())  # YAML errors span lines; the message is one
        where = kubeconfig or ("the in-cluster config" if in_cluster else default_file)
        raise UsageError(f"cannot load the Kubernetes configuration {where}: {detail}") from None
    return configuration
