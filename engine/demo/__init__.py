"""The demo sandbox: local stand-ins for remote hosts, so ``lifeboat demo`` and the tests run
against real SSH without any infrastructure.

``engine.demo.server`` holds the in-process SSH server; like the rest of the engine this
package never imports Textual.
"""
