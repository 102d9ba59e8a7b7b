"""What the steering policy tells the publisher (publish/pathways.py's PathwayPlan): where a bucket's
pathway lists what it lacks while players are steered away from it, and whether the VM's pathway only
redirects to the first bucket."""

from __future__ import annotations

from collections.abc import Sequence

from ..playlist.pathway import Pathway
from ..publish.pathways import PathwayPlan
from .policy import SteeringPolicy


def steered_plan(pathways: Sequence[Pathway], policy: SteeringPolicy) -> PathwayPlan:
    """The plan of `pathways` as `policy` steers them: a bucket's pathway players are steered away from
    because it fails lists what it lacks at the URI of the pathways before it, best first (a healthy
    second bucket lists only its own); the VM's lists only what the first bucket has while the VM
    redirects there (policy.bucket_serves)."""

    def fallbacks(pathway: str) -> Sequence[str]:
        priority = policy.priority
        if pathway not in priority or priority[0] == pathway or not policy.failing(pathway):
            return ()
        return priority[:priority.index(pathway)]

    return PathwayPlan(tuple(pathways), fallbacks, policy.bucket_serves)
