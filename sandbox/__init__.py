"""Local stand-ins for everything the pipeline talks to.

Real servers on loopback, never mocks: ``redis-server`` processes, and HTTP
servers that speak the documented Telegram Bot API and Render API shapes. Tests
use them, and so does ``ci-tools rehearse``.
"""
