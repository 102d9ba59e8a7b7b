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
- `ffmpeg`: the ffmpeg binary `imageio-ffmpeg` ships; `children`: the child processes, never left behind.
"""

from .run import DemoError, run_demo

__all__ = ["DemoError", "run_demo"]
