"""Running by itself: cron expressions, where each schedule stands, claiming ticks, and the
scheduler daemon.
"""
