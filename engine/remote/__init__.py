"""Reaching hosts: verified SSH connections (``ssh``), bulk streams through OpenSSH (``openssh``),
remote command lines (``commands``) and small questions asked of a host (``hostfacts``).
"""
