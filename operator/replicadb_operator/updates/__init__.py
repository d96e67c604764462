"""Changing a running database: the operator rolls the instance pods to a new template.

``lag_bound``: whether a replica is close enough to serve reads, or to count as caught up.
``roll``: pure; the pods' revisions and health in, the one next action out.
``progress``: pure; what status says about a roll (``status.rollingUpdate``).
``driver``: carries the action out for the monitor (pod deletion, switchover, Events).
"""
