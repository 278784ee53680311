"""Jobs that do the imperative work of a wave and gate it (issue: node migration Jobs).

API used by generator/render (each returns generator.render.model.Item lists):
    preflight_items(plan, inventory)            read-only checks before anything changes
    post_install_items(plan, inventory)         after Cilium is installed in migration mode
    node_wave_items(plan, inventory, wave)      per-node runner Job + validation Job for one batch
    rollback_items(plan, inventory, wave)       reverse runner Job for a wave's rollback branch
    final_items(plan, inventory)                after the final values
    removal_items(plan, inventory)              after the old CNI is removed
    common_items(plan)                          Namespace, ServiceAccounts, Roles, script
                                                ConfigMap, probe DaemonSet + Service
The code the Jobs run lives in generator/runner/ (standard library only), mounted from a ConfigMap.
Steps done with kubectl alone (pin Calico's address autodetection, restart agents, delete the
old CNI, gates on objects without health) are in generator/jobs/kubectl.py.
"""
from .common import common_items
from .waves import (final_items, node_wave_items, post_install_items, preflight_items,
                    removal_items, rollback_items)

__all__ = ["common_items", "preflight_items", "post_install_items", "node_wave_items",
           "rollback_items", "final_items", "removal_items"]
