"""The local cloud's dashboard: queues, dead letters, functions and workflows, and the views extensions
add, in a browser page that refreshes itself (``LocalCloud(dashboard_port=...)``, ``localcloud up``)."""

from localcloud.dashboard.data import DashboardData
from localcloud.dashboard.server import Dashboard

__all__ = ["Dashboard", "DashboardData"]
