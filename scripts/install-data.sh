#!/usr/bin/env bash
# Installs the data that comes from Debian packages when apt-get is usable:
#   - Fashion-MNIST (dataset-fashion-mnist): the default image data;
#   - Unicode's emoji-test.txt (unicode-data) and the CLDR annotations (unicode-cldr-core):
#     the texts and labels of the openmoji image-text pairs.
# Never fails the set-up: without Fashion-MNIST hashlearn falls back to scikit-learn's
# digits and says so; without the Unicode files the openmoji data set is unavailable.
set -u
SUDO=""
if [ "$(id -u)" != "0" ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; fi
fi
CAN_APT=0
if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" = "0" ] || [ -n "$SUDO" ]; }; then CAN_APT=1; fi
UPDATED=0

# apt_install PACKAGE FILE: install PACKAGE unless FILE exists; 0 when FILE exists afterwards
apt_install() {
  local package="$1" file="$2"
  if [ -e "$file" ]; then echo "$package: found ($file)"; return 0; fi
  if [ "$CAN_APT" = "1" ]; then
    echo "$package: installing Debian package $package"
    if ! $SUDO apt-get install -y -qq "$package" >/dev/null 2>&1; then
      if [ "$UPDATED" = "0" ]; then $SUDO apt-get update -qq >/dev/null 2>&1; UPDATED=1; fi
      $SUDO apt-get install -y -qq "$package" >/dev/null 2>&1
    fi
  fi
  [ -e "$file" ]
}

FMNIST_DIR=/usr/share/datasets/fashion-mnist
if ! apt_install dataset-fashion-mnist "$FMNIST_DIR/train-images-idx3-ubyte.gz"; then
  cat <<MSG
fashion-mnist: NOT installed. To get it, either
  - install Debian's package:  sudo apt-get install dataset-fashion-mnist
  - or download the four idx .gz files of Fashion-MNIST and pass their folder
    with --data-dir (or set HASHLEARN_FASHION_MNIST_DIR).
hashlearn falls back to scikit-learn's digits data set until then.
MSG
fi

if ! apt_install unicode-data /usr/share/unicode/emoji/emoji-test.txt \
   || ! apt_install unicode-cldr-core /usr/share/unicode/cldr/common/annotations/en.xml; then
  echo "openmoji: the Unicode files are NOT installed (sudo apt-get install unicode-data unicode-cldr-core);"
  echo "          the openmoji image-text data set is unavailable until then."
fi
exit 0
