"""Operating the platform: backups and restore, key checks and rotation, metrics, PostgreSQL
tools."""
