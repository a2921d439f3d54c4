"""The local cloud's dashboard: queues, dead letters, functions, jobs, workflows and schedules in a
browser page that refreshes itself (``LocalCloud(dashboard_port=...)``, ``make up``)."""

from localcloud.dashboard.data import DashboardData
from localcloud.dashboard.server import Dashboard

__all__ = ["Dashboard", "DashboardData"]
