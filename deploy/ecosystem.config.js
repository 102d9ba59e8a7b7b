// pm2 process file for hls-broadcaster (an alternative to the systemd unit; use one, not both).
//
//   pm2 start /opt/hls-broadcaster/ecosystem.config.js && pm2 save     # pm2 startup: start on boot
//   pm2 logs hls-broadcaster
//
// As Owncast's user, after the steps of docs/production.md ("With pm2 instead of systemd"), which make
// what pm2 does not: the log folder and STATE_DIR, that user's own, and the env file readable by it.
//
// Settings come from the env file (see deploy/env.example), read by the service itself through
// --env-file, so the secret never lands in pm2's process list or its `pm2 save` dump.
// Override the paths with HLS_BROADCASTER_HOME / HLS_BROADCASTER_ENV_FILE / HLS_BROADCASTER_LOG_DIR.
//
// Open files: pm2 has no setting for them; the service inherits the pm2 daemon's limit, which is the
// limit of the shell that first started pm2 (often 1024: room for about 800 viewer connections; the
// service logs its caps at start-up, see docs/limits.md#limits). Raise it for the daemon and restart it:
//   pm2 kill && ulimit -n 65536 && pm2 resurrect        # hard limit too low? /etc/security/limits.conf
// With `pm2 startup` (systemd), add LimitNOFILE=65536 to the generated pm2-<user>.service instead.
"use strict";

const path = require("path");

const home = process.env.HLS_BROADCASTER_HOME || "/opt/hls-broadcaster";
const envFile = process.env.HLS_BROADCASTER_ENV_FILE || "/etc/hls-broadcaster/env";
const logDir = process.env.HLS_BROADCASTER_LOG_DIR || path.join(home, "logs");

module.exports = {
  apps: [
    {
      name: "hls-broadcaster",
      script: path.join(home, "venv", "bin", "hls-broadcaster"),
      args: ["--env-file", envFile, "run"],
      interpreter: "none", // a console script of the venv, not a Node.js file
      cwd: home,
      exec_mode: "fork",
      instances: 1, // one uploader per Owncast: never cluster it
      autorestart: true,
      // 1 s after a crash, growing x1.5 (to 15 s) while it keeps failing; resets once it runs.
      exp_backoff_restart_delay: 1000,
      min_uptime: "10s",
      max_restarts: 10,
      // Exit status 2 is a set-up mistake (a setting, a folder, the port taken, a bucket that does not
      // exist or credentials refused): restarting cannot fix it (the error log names it), so pm2 does not
      // restart it, though `pm2 list` shows "waiting restart" (docs/production.md#exit-codes).
      stop_exit_codes: [2],
      // pm2 sends SIGINT, then SIGKILL after kill_timeout: leave time for the upload drain.
      kill_timeout: 20000,
      env: {
        PYTHONUNBUFFERED: "1",
      },
      out_file: path.join(logDir, "hls-broadcaster.out.log"),
      error_file: path.join(logDir, "hls-broadcaster.err.log"), // the service logs to stderr
      merge_logs: true,
      time: false, // each line already starts with a timestamp
    },
  ],
};
