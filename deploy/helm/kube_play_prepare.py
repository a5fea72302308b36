"""Turn the chart's rendered manifests into what ``podman kube play`` (4.3) can run here.

podman runs Pods, Deployments, ConfigMaps and PersistentVolumeClaims only, and mounts only
hostPath, emptyDir, persistentVolumeClaim and configMap volumes; there is no cluster network
and no Job controller. So, keeping everything else as rendered (image, args, env, the
ConfigMap, the security context, probes):

- the migration Job's pod template becomes a Pod (run first, to completion);
- Services, PodDisruptionBudgets, the Ingress and NetworkPolicies are dropped;
- each emptyDir gets a name of its own (podman 4.3 makes a named volume of it, so every
  pod's "tmp" would otherwise be one shared volume);
- the claim becomes a hostPath folder (MEDAI_HOME), the projected Secret volume a hostPath
  folder holding the same files, so the pods read MEDAI_*_FILE exactly as in a cluster;
- pods use the host's network (PostgreSQL and Redis listen on 127.0.0.1 here) and bind
  127.0.0.1, never a public address; podman refuses port mappings there, so the containers'
  port lists go and the probes give the port's number instead of its name.

usage: python kube_play_prepare.py RENDERED.yaml WORKDIR HOME_DIR SECRETS_DIR
writes WORKDIR/migrate.yaml and WORKDIR/app.yaml
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

LOOPBACK_ENV = {"MEDAI_HOST": "127.0.0.1", "MEDAI_DICOM_HOST": "127.0.0.1"}


def local_pod_spec(spec: dict[str, Any], pod: str, home: str, secrets: str) -> dict[str, Any]:
    """The pod spec with host networking, hostPath volumes and loopback binds."""
    spec["hostNetwork"] = True
    renamed = {}
    for volume in spec.get("volumes", []):
        if "emptyDir" in volume:  # podman 4.3 makes a named volume of it: one per pod
            renamed[volume["name"]] = volume["name"] = f"{pod}-{volume['name']}"
        elif "persistentVolumeClaim" in volume:
            volume.pop("persistentVolumeClaim")
            volume["hostPath"] = {"path": home, "type": "Directory"}
        elif "projected" in volume:
            volume.pop("projected")
            volume["hostPath"] = {"path": secrets, "type": "Directory"}
    for container in spec["containers"]:
        # podman refuses port mappings on the host's network: the ports go, and the probes
        # name the port by number instead of by its name
        numbers = {p["name"]: p["containerPort"] for p in container.pop("ports", [])}
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            action = container.get(probe, {}).get("httpGet") or container.get(probe, {}).get(
                "tcpSocket"
            )
            if action and action.get("port") in numbers:
                action["port"] = numbers[action["port"]]
        for mount in container.get("volumeMounts", []):
            mount["name"] = renamed.get(mount["name"], mount["name"])
        for var in container.get("env", []):
            if var["name"] in LOOPBACK_ENV:
                var["value"] = LOOPBACK_ENV[var["name"]]
    return spec


def main(rendered: Path, work: Path, home: str, secrets: str) -> None:
    docs = [d for d in yaml.safe_load_all(rendered.read_text()) if d]
    app: list[dict[str, Any]] = []
    migrate: list[dict[str, Any]] = []
    for doc in docs:
        kind = doc["kind"]
        if kind == "ConfigMap":
            app.insert(0, doc)
        elif kind == "Deployment":
            local_pod_spec(doc["spec"]["template"]["spec"], doc["metadata"]["name"], home, secrets)
            app.append(doc)
        elif kind == "Job":
            template = doc["spec"]["template"]
            migrate.append(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {
                        "name": doc["metadata"]["name"],
                        "labels": template["metadata"]["labels"],
                    },
                    "spec": local_pod_spec(
                        template["spec"], doc["metadata"]["name"], home, secrets
                    ),
                }
            )
    (work / "app.yaml").write_text(yaml.safe_dump_all(app, sort_keys=False))
    (work / "migrate.yaml").write_text(yaml.safe_dump_all(migrate, sort_keys=False))
    print(
        f"{len(migrate)} migration pod, {len(app) - 1} deployments: "
        + ", ".join(d["metadata"]["name"] for d in app if d["kind"] == "Deployment")
    )


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(__doc__.rsplit("usage: ", 1)[1])
    main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4])
