"""Credentials in a spec, and the Secret that then carries the spec instead of a ConfigMap.

The manifests carry the spec's text to the pods. In a ConfigMap it is readable by anyone with the
namespace's ``view`` role, shown by ``kubectl describe``, and copied into GitOps repositories and
dashboards as configuration; Kubernetes keeps Secrets apart (RBAC, ``describe`` hides their values,
encryption at rest where the cluster enables it). So a spec that holds credentials travels in a Secret
of the same name and key, mounted at the same path (the entrypoint reads ``/spec/spec.yaml`` either
way), and one that holds none stays in a ConfigMap, readable by the people who follow the sweep. Not a
Secret always: that would hide every spec from them to guard the few that should not hold
credentials in the first place (render warns: they belong in a Secret the pods read as env).

A credential is a URI's user info (``https://user:token@mlflow.example.com``,
``s3://KEY:SECRET@bucket/prefix``), a URI query parameter named like one (``access_key=``,
``secret_key=``, ``token=``, ``password=``, ``X-Amz-Signature=``, ``sig=``), or a string under a key
named like one (``fixed: {hf_token: ...}``). Lines are searched as text, comments included, since the
object carries the whole file; a credential's value is never repeated in a message.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

URI_USER_INFO = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s/?#@'\"]+@")
QUERY_NAME = re.compile(r"[?&;]([A-Za-z0-9_.\-]+)=")
CREDENTIAL_NAME = re.compile(
    r"(^|_)(password|passwd|pwd|secret|token|credentials?|signature|sig|apikey"
    r"|(access|secret|api|private|account)_?key)(_|$)"
)
STR = "tag:yaml.org,2002:str"


def credential_lines(text: str) -> list[int]:
    """The lines (1-based) of a spec's text that hold a credential."""
    found = {
        number
        for number, line in enumerate(text.splitlines(), 1)
        if URI_USER_INFO.search(line) or any(map(_named_like_one, QUERY_NAME.findall(line)))
    }
    return sorted(found | set(_credential_values(yaml.compose(text))))


def _named_like_one(name: str) -> bool:
    return bool(CREDENTIAL_NAME.search(re.sub(r"[^a-z0-9]+", "_", name.lower())))


def _credential_values(node: Any) -> list[int]:
    """Lines of non-empty strings under keys named like a credential, anywhere in the YAML."""
    if isinstance(node, yaml.MappingNode):
        lines = []
        for key, value in node.value:
            if (
                isinstance(value, yaml.ScalarNode)
                and value.tag == STR
                and value.value
                and _named_like_one(str(key.value))
            ):
                lines.append(value.start_mark.line + 1)
            lines += _credential_values(value)
        return lines
    if isinstance(node, yaml.SequenceNode):
        return [line for item in node.value for line in _credential_values(item)]
    return []


def as_secret(configmap: dict[str, Any]) -> None:
    """Turn the spec's ConfigMap into a Secret of the same name, labels and key, in place."""
    data = configmap.pop("data")
    configmap.update(apiVersion="v1", kind="Secret", type="Opaque", stringData=data)


def as_secret_volume(volume: dict[str, Any]) -> None:
    """Turn a pod's ConfigMap volume into the Secret volume of the same name, in place (same items, mode)."""
    source = volume.pop("configMap")
    volume["secret"] = {"secretName": source.pop("name"), **source}
