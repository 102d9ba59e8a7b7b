// pm2 process file for the viewers' WebTorrent tracker (an alternative to deploy/tracker/'s systemd unit;
// use one, not both). Only if P2P_TRACKERS is on; see tracker.mjs for what it does and its bounds.
//
//   cd /opt/hls-broadcaster/tracker && npm ci --ignore-scripts --omit=dev
//   pm2 start /opt/hls-broadcaster/tracker/ecosystem.config.cjs && pm2 save
//   pm2 logs hls-broadcaster-tracker
//
// .cjs: this folder's package.json says "type": "module", and pm2 reads its process files with require().
"use strict";

const path = require("path");

module.exports = {
  apps: [
    {
      name: "hls-broadcaster-tracker",
      script: path.join(__dirname, "tracker.mjs"),
      cwd: __dirname,
      node_args: ["--max-old-space-size=256"],
      exec_mode: "fork",
      instances: 1, // one tracker: peers of a swarm must all reach the same one
      autorestart: true,
      // Restarted whenever it dies, however often (no message from a client can make it die: tests/
      // test_tracker_hostile.py); the delay grows from 1 s to 15 s while it keeps failing.
      exp_backoff_restart_delay: 1000,
      min_uptime: "10s",
      max_restarts: 1000000,
      stop_exit_codes: [2], // a bad TRACKER_* setting or its port taken: restarting cannot fix it
      kill_timeout: 5000,
      max_memory_restart: "400M",
      env: {
        NODE_ENV: "production",
        TRACKER_HOST: "127.0.0.1",
        TRACKER_PORT: "8000",
        TRACKER_SERVICE_URL: "http://127.0.0.1:3000",
        TRACKER_MAX_CONNECTIONS: "2000",
        TRACKER_MAX_CLIENT_CONNECTIONS: "20",
        TRACKER_IPV6_PREFIX: "48",
        TRACKER_CLIENT_ANNOUNCES: "120",
        TRACKER_SOCKET_ANNOUNCES: "20",
        TRACKER_MAX_PEERS: "1000",
        TRACKER_MAX_MESSAGE: "65536",
        TRACKER_MAX_BUFFERED: "65536",
        TRACKER_IDLE_SECONDS: "300",
      },
      merge_logs: true,
    },
  ],
};
