"""ci-tools: the tested logic behind MindMate's release workflows.

Workflows stay thin: every step is ``ci-tools <command>``, and everything that can
go wrong is decided here, where it is tested against real Redis servers and local
stand-ins for Telegram and Render.
"""

__version__ = "0.1.0"
