"""`hls-broadcaster demo` and the parts it runs on this machine, which the tests reuse.

In: the demo command's options. Out: a local S3 server, a synthetic Owncast stream written into a folder
as Owncast writes it, and the service and its viewer running on them, stopped together.
Never: be the service: nothing outside this package (but the CLI's `demo` command) imports it, and it
leaves no child process behind (children.py).
- `run`: the demo itself (a local S3 server, a synthetic Owncast stream, the service, the viewer).
- `seaweed`: a real local S3 server (SeaweedFS) standing in for R2.
- `emulator`: a synthetic live stream written to a folder exactly the way Owncast writes it, from parts:
  `owncast_settings` (what a stream starts with), `transcoder_args` and `transcoder` (ffmpeg's command
  lines and processes), `receiver` (the PUT receiver), `offline_clip`, and `owncast_files`, the one copy
  of how Owncast's folder is written (in place, playlists, names), which the tests' and benches' hand-fed
  writers drive too.
- `ffmpeg`: the ffmpeg binary `imageio-ffmpeg` ships; `children`: the child processes, never left behind,
  their start-up waited for while they get on; `ports`: ports reserved on this machine for servers
  told their port before they bind it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DemoError", "run_demo"]


def __getattr__(name: str) -> Any:
    """run_demo and DemoError, imported when asked for: a test that uses one part (owncast_files, say)
    does not load them all (the service, SeaweedFS's client, the emulator)."""
    if name in __all__:
        from . import run

        return getattr(run, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
