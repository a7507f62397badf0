"""The console: one site's workspaces, metering and rating."""
