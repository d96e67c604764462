"""A fixed CPU budget per process tree, through the kernel's CPU controller (CFS quota).

Each database instance of a real deployment has CPUs of its own; on one test machine every
local process shares the same cores. A group per instance with ``cores`` worth of CPU time
per period gives each the budget a pod's ``resources.limits.cpu`` would, so adding a replica
adds capacity as it does in production. cgroup v1 (``cpu`` controller) and v2 (``cpu.max``)
are both handled; the groups are removed when the budget is closed.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType

CGROUP_ROOT = Path("/sys/fs/cgroup")
# Whatever else runs on the machine, the benchmark's processes come first (up to their
# quotas), as if the cores were theirs.
MAX_SHARES_V1 = 262_144
MAX_WEIGHT_V2 = 10_000
PERIOD_US = 10_000  # short: a group that spends its quota waits at most this long


class CpuBudgetUnavailable(RuntimeError):
    pass


def _hierarchy() -> tuple[Path, bool]:
    """The CPU controller's mount and whether it is the unified (v2) hierarchy."""
    if (CGROUP_ROOT / "cgroup.controllers").exists():
        if "cpu" not in (CGROUP_ROOT / "cgroup.controllers").read_text().split():
            raise CpuBudgetUnavailable("cgroup v2 without the cpu controller")
        return CGROUP_ROOT, True
    v1 = CGROUP_ROOT / "cpu"
    if (v1 / "cpu.cfs_quota_us").exists():
        return v1, False
    raise CpuBudgetUnavailable(f"no CPU controller under {CGROUP_ROOT}")


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, ()))
    return found


class CpuBudget:
    """Named groups under one parent, each limited to ``cores`` CPUs."""

    def __init__(self, prefix: str = "replicadb-bench") -> None:
        self.root, self.unified = _hierarchy()
        self.parent = self.root / f"{prefix}-{os.getpid()}"
        self.groups: dict[str, Path] = {}

    def __enter__(self) -> CpuBudget:
        self.parent.mkdir(exist_ok=True)
        if self.unified:
            (self.parent / "cgroup.subtree_control").write_text("+cpu")
            (self.parent / "cpu.weight").write_text(str(MAX_WEIGHT_V2))
        else:
            (self.parent / "cpu.shares").write_text(str(MAX_SHARES_V1))
        return self

    def unlimited(self, name: str) -> Path:
        """A group without a quota (the clients): it only shares the parent's priority.
        Returns the file a process writes its pid to, to join."""
        group = self.parent / name
        group.mkdir(exist_ok=True)
        self.groups[name] = group
        return group / "cgroup.procs"

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def limit(self, name: str, cores: float) -> None:
        group = self.groups.get(name) or self.parent / name
        group.mkdir(exist_ok=True)
        quota = max(1000, int(cores * PERIOD_US))
        if self.unified:
            (group / "cpu.max").write_text(f"{quota} {PERIOD_US}")
        else:
            (group / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (group / "cpu.cfs_quota_us").write_text(str(quota))
        self.groups[name] = group

    def add_tree(self, name: str, pid: int) -> int:
        """Move ``pid`` and its descendants into the group (children forked later follow)."""
        procs = self.groups[name] / "cgroup.procs"
        moved = 0
        for member in descendants(pid):
            try:
                procs.write_text(str(member))
                moved += 1
            except ProcessLookupError:  # exited meanwhile
                continue
        return moved

    def throttled_s(self, name: str) -> float:
        """Time the group's processes waited for their budget."""
        stat = dict(
            line.split() for line in (self.groups[name] / "cpu.stat").read_text().splitlines()
        )
        if self.unified:
            return int(stat.get("throttled_usec", 0)) / 1e6
        return int(stat.get("throttled_time", 0)) / 1e9

    def close(self) -> None:
        """Move what is left back to the root and remove the groups."""
        for group in self.groups.values():
            for pid in (group / "cgroup.procs").read_text().split():
                try:
                    (self.root / "cgroup.procs").write_text(pid)
                except (ProcessLookupError, OSError):
                    continue
            group.rmdir()
        self.groups.clear()
        if self.parent.exists():
            self.parent.rmdir()
