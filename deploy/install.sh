#!/usr/bin/env bash
# Install or upgrade the photo-library appliance on Debian or Raspberry Pi OS (bookworm; arm64 or amd64).
#
#   sudo deploy/install.sh [--prefix DIR] [--config FILE] [--data-dir DIR] [--models-dir DIR]
#                          [--library-root DIR]... [--user NAME] [--no-systemd] [--dry-run]
#
# Running it again upgrades in place: the venv is refreshed, the config file and the data are kept.
set -euo pipefail

PREFIX=/opt/appliance
CONFIG=""
DATA_DIR=""
MODELS_DIR=""
LIBRARY_ROOTS=()
SERVICE_USER=appliance
SYSTEMD=1
DRY_RUN=0
SOURCE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

usage() {
    sed -n '2,7p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit "${1:-0}"
}

while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) PREFIX="$2"; shift 2 ;;
        --config) CONFIG="$2"; shift 2 ;;
        --data-dir) DATA_DIR="$2"; shift 2 ;;
        --models-dir) MODELS_DIR="$2"; shift 2 ;;
        --library-root) LIBRARY_ROOTS+=("$2"); shift 2 ;;
        --user) SERVICE_USER="$2"; shift 2 ;;
        --no-systemd) SYSTEMD=0; shift ;;
        --dry-run) DRY_RUN=1; shift ;;
        -h|--help) usage 0 ;;
        *) echo "install.sh: unknown option $1" >&2; usage 2 ;;
    esac
done

# The system places for the default prefix; everything under the prefix otherwise (installs without root).
if [ "$PREFIX" = /opt/appliance ]; then
    CONFIG="${CONFIG:-/etc/appliance/config.toml}"
    DATA_DIR="${DATA_DIR:-/var/lib/appliance}"
else
    CONFIG="${CONFIG:-$PREFIX/etc/config.toml}"
    DATA_DIR="${DATA_DIR:-$PREFIX/var/lib/appliance}"
fi
MODELS_DIR="${MODELS_DIR:-$DATA_DIR/models}"
[ ${#LIBRARY_ROOTS[@]} -gt 0 ] || LIBRARY_ROOTS=(/srv/photos)
VENV="$PREFIX/venv"

run() {
    echo "+ $*"
    [ "$DRY_RUN" = 1 ] || "$@"
}

if [ "$SYSTEMD" = 1 ] && [ "$(id -u)" != 0 ]; then
    echo "install.sh: installing the service needs root (sudo), or pass --no-systemd" >&2
    exit 1
fi
if ! python3 -c 'import sys, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "install.sh: needs Python 3.11+ with venv: sudo apt-get install python3 python3-venv" >&2
    exit 1
fi

if [ "$SYSTEMD" = 1 ] && ! id "$SERVICE_USER" >/dev/null 2>&1; then
    run useradd --system --user-group --home-dir "$DATA_DIR" --shell /usr/sbin/nologin "$SERVICE_USER"
fi
if [ "$SYSTEMD" = 1 ] && getent group plugdev >/dev/null; then
    run usermod --append --groups plugdev "$SERVICE_USER"
fi

[ -x "$VENV/bin/python" ] || run python3 -m venv "$VENV"
run "$VENV/bin/pip" install --quiet --upgrade "$SOURCE"
run install -d -m 0755 "$PREFIX"
run install -m 0644 "$SOURCE/README.md" "$PREFIX/README.md"

run install -d -m 0700 "$DATA_DIR"
[ -d "$MODELS_DIR" ] || run install -d -m 0755 "$MODELS_DIR"  # never re-mode a folder given to us
run install -d -m 0755 "$(dirname "$CONFIG")"
if [ -e "$CONFIG" ]; then
    echo "keeping the existing config $CONFIG"
else
    echo "+ writing $CONFIG"
    roots=""
    for root in "${LIBRARY_ROOTS[@]}"; do roots="$roots\"$root\", "; done
    if [ "$DRY_RUN" = 0 ]; then
        (umask 077 && cat > "$CONFIG") <<EOF
# Photo-library appliance settings. \`appliance serve --help\` lists every setting.

# Address to listen on. 127.0.0.1: this machine only. 0.0.0.0: the whole LAN; then an API token is
# required, and one is generated into DATA_DIR/api-token unless you set api_token below.
host = "127.0.0.1"
port = 8000

# Folders whose photos may be indexed (read only: the appliance never changes a photo).
library_roots = [${roots%, }]

# Database, thumbnails and the generated token. The service may write only here.
data_dir = "$DATA_DIR"

# The model files (see \`appliance models list\`; \`appliance models fetch\` downloads what it can).
models_dir = "$MODELS_DIR"

# auto: the Coral Edge TPU when its delegate loads, else the CPU. cpu. edgetpu: refuse to start without it.
accelerator = "auto"

# yolov8n (AGPL-3.0, finds more, fewer false boxes) or ssd_mobilenet_v1 (Apache-2.0).
detector = "yolov8n"

# Clients send "Authorization: Bearer TOKEN" (at least 16 characters).
# api_token = "..."
EOF
    fi
fi
if [ "$SYSTEMD" = 1 ]; then
    run chown -R "$SERVICE_USER:$SERVICE_USER" "$DATA_DIR"
    run chgrp "$SERVICE_USER" "$CONFIG"
    run chmod 0640 "$CONFIG"
fi

# The unit, with this install's paths. Kept under the prefix too, where a test can verify it.
unit="$PREFIX/appliance.service"
echo "+ writing $unit"
if [ "$DRY_RUN" = 0 ]; then
    sed -e "s|/opt/appliance|$PREFIX|g" \
        -e "s|/etc/appliance/config.toml|$CONFIG|g" \
        -e "s|/var/lib/appliance|$DATA_DIR|g" \
        -e "s|^User=appliance|User=$SERVICE_USER|" \
        -e "s|^Group=appliance|Group=$SERVICE_USER|" \
        "$SOURCE/deploy/appliance.service" > "$unit"
fi

if [ "$SYSTEMD" = 1 ]; then
    run install -m 0644 "$unit" /etc/systemd/system/appliance.service
    run install -m 0644 "$SOURCE/deploy/99-coral-edgetpu.rules" /etc/udev/rules.d/99-coral-edgetpu.rules
    run udevadm control --reload-rules
    run systemctl daemon-reload
    run systemctl enable appliance.service
    run systemctl restart appliance.service
    echo "installed; logs: journalctl -u appliance -f; checks: sudo -u $SERVICE_USER $VENV/bin/appliance doctor --config $CONFIG"
else
    echo "installed without systemd; start it with: $VENV/bin/appliance serve --config $CONFIG"
fi
