"""The official Python Kubernetes client through a `sluice connect` tunnel (KUBECONFIG set by
the CLI): lists pods and reads a Secret, printing what it got as JSON for the test."""

import json

from kubernetes import client, config

config.load_kube_config()
core = client.CoreV1Api()
pods = [p.metadata.name for p in core.list_namespaced_pod("prod").items]
secret = core.read_namespaced_secret("db-creds", "prod")
try:
    core.delete_namespace("prod")
    deleted = "deleted"
except client.exceptions.ApiException as e:
    deleted = f"{e.status}: {json.loads(e.body).get('message', '')}"
print(json.dumps({"pods": pods, "data": secret.data, "delete": deleted}))
