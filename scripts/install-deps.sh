#!/usr/bin/env bash
# Installs what SceneStream builds and tests with, from Debian's packages and PyPI. Idempotent; run as root
# (or with sudo available). Nothing here downloads anything else.
set -euo pipefail

packages=(pkg-config openssl zlib1g-dev libwebsockets-dev mosquitto mosquitto-clients libmosquitto-dev libnats-dev nats-server chromium libjs-three libjs-dygraphs node-qrcode-generator)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
python3 -c "import websockets, pytest, paho.mqtt, trimesh" 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check "websockets>=13" "pytest>=7" "paho-mqtt>=2" "trimesh==4.5.3"
# mqtt-spb-wrapper (a Sparkplug B edge library nobody here wrote, for the interop test) pins paho-mqtt 1.6.1 and an
# old protobuf: kept in its own folder (PYTHONPATH for the edge process only), so the rest keeps paho-mqtt 2.
spb="$(cd "$(dirname "$0")/.." && pwd)/.build-py/spb-wrapper"
[ -d "$spb/mqtt_spb_wrapper" ] || python3 -m pip install --quiet --disable-pip-version-check --target "$spb" "mqtt-spb-wrapper==2.1.2"
