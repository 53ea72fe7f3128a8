#!/usr/bin/env bash
# Start Atri's replicas behind nginx (deploy/nginx-atri.conf): one `streamlit run` per port, all on one
# database. Procfile-style: runs in the foreground, stops all replicas when stopped. Settings come from
# the environment or .env (ATRI_DATABASE_URL, ATRI_ACCESS_PASSWORD, quotas, keys; see README).
#   deploy/run.sh [PORT...]        default: 8501 8502
set -euo pipefail
cd "$(dirname "$0")/.."
ports=("$@")
[ ${#ports[@]} -eq 0 ] && ports=(8501 8502)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait' EXIT INT TERM
for port in "${ports[@]}"; do
    .venv/bin/streamlit run app.py --server.headless true --server.address 127.0.0.1 --server.port "$port" &
    pids+=($!)
done
wait -n
