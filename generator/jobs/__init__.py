"""Jobs that do the imperative work of a wave and gate it (issue: node migration Jobs).

API used by generator/render (each returns generator.render.model.Item lists):
    preflight_items(plan, inventory)            read-only checks before anything changes
    post_install_items(plan, inventory)         after Cilium is installed in migration mode
    node_wave_items(plan, inventory, wave)      per-node runner Job + validation Job for one batch
    final_items(plan, inventory)                after the final values
    removal_items(plan, inventory)              after the old CNI is removed
    common_items(plan)                          ServiceAccounts, Roles, script ConfigMaps, probe DS
The code the Jobs run lives in generator/runner/ (standard library only), mounted from a ConfigMap.
"""
