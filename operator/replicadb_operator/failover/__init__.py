"""Failover and switchover as one recorded plan.

``record``: what status says about a plan under way (kind, target, steps done).
``transitions``: the only changes ever made to ``phase``, ``primary``, ``targetPrimary``,
``failover`` and ``failoverBlocked``; pure functions of the status they apply to.
``writer``: the one writer that applies them with the last observed ``resourceVersion``.
``plan``: the steps, top to bottom; ``steps``: what each step does to PostgreSQL and pods.
``decide``: when to start a plan and for which target.
"""
