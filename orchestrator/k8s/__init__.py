"""Deploying a sweep on Kubernetes: KubeRay manifests rendered from a spec, and their submission."""
