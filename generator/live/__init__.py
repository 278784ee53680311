"""Reading a live cluster through the Kubernetes API (the `kubernetes` client is imported only
inside functions of client.py: it costs ~0.3 s and only live paths need it).

resources.py  what is read (kinds, namespaces, Calico groups)
client.py     kubeconfig, raw paged GETs, one-line errors
reader.py     read_cluster -> ClusterRead; read_inventory -> Inventory
normalize.py  volatile fields removed, kubectl List order
snapshot.py   write_snapshot: one List file per kind
rbac.py       the minimal read-only ClusterRole (`snapshot --print-clusterrole`)
"""
