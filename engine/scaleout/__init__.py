"""Several Lifeboat instances sharing one repository: etcd coordination (locks, ticks, the audit
anchor) and the shared MongoDB catalog.
"""
