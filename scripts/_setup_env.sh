# Sourced by scripts/demo and scripts/test: make .venv (once) and install the project into it.
# Usage: . scripts/_setup_env.sh EXTRAS   (e.g. "napari" or "test")
set -euo pipefail
extras="$1"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv with $(${PYTHON:-python3} --version)"
  "${PYTHON:-python3}" -m venv .venv
fi
# shellcheck disable=SC1091
. .venv/bin/activate
echo "==> installing napari-histo[$extras] into .venv"
python -m pip install -q --upgrade pip
python -m pip install -q -e ".[$extras]"

need_orthanc() {
  # the DICOMweb tests serve a converted slide from a local Orthanc (127.0.0.1 only); without it they skip
  command -v Orthanc >/dev/null && [ -e /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] && return 0
  local sudo=""
  [ "$(id -u)" != 0 ] && sudo="sudo"
  echo "==> installing Orthanc and its DICOMweb plugin (apt), for the DICOMweb tests"
  { $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends orthanc \
      orthanc-dicomweb >/dev/null 2>&1 \
    || { $sudo apt-get update -q >/dev/null 2>&1 && $sudo env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -q --no-install-recommends orthanc orthanc-dicomweb >/dev/null 2>&1; }; } \
    || echo "    Orthanc could not be installed: the DICOMweb tests will be skipped"
}

need_xvfb() {
  # napari's viewer needs a real X server with OpenGL; install Xvfb and the GL/xcb libraries once
  command -v xvfb-run >/dev/null && [ -e /usr/lib/x86_64-linux-gnu/libxcb-cursor.so.0 ] && return 0
  local sudo=""
  [ "$(id -u)" != 0 ] && sudo="sudo"
  echo "==> installing Xvfb and OpenGL libraries (apt)"
  $sudo apt-get update -q >/dev/null
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q xvfb xauth libgl1 libegl1 \
    libxkbcommon-x11-0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 \
    libxcb-xinerama0 libxcb-xfixes0 libxcb-shape0 libxcb-cursor0 libdbus-1-3 libgl1-mesa-dri \
    libfontconfig1 >/dev/null
}
