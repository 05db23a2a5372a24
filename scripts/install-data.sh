#!/usr/bin/env bash
# Installs the default image data (Fashion-MNIST) from Debian's package
# `dataset-fashion-mnist` when apt-get is usable. Never fails the set-up:
# without it, hashlearn falls back to scikit-learn's digits and says so.
set -u
FMNIST_DIR=/usr/share/datasets/fashion-mnist
if [ -f "$FMNIST_DIR/train-images-idx3-ubyte.gz" ]; then
  echo "fashion-mnist: found in $FMNIST_DIR"
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; fi
fi
if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" = "0" ] || [ -n "$SUDO" ]; }; then
  echo "fashion-mnist: installing Debian package dataset-fashion-mnist"
  if ! $SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1; then
    $SUDO apt-get update -qq >/dev/null 2>&1
    $SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1
  fi
fi
if [ -f "$FMNIST_DIR/train-images-idx3-ubyte.gz" ]; then
  echo "fashion-mnist: installed in $FMNIST_DIR"
else
  cat <<MSG
fashion-mnist: NOT installed. To get it, either
  - install Debian's package:  sudo apt-get install dataset-fashion-mnist
  - or download the four idx .gz files of Fashion-MNIST and pass their folder
    with --data-dir (or set HASHLEARN_FASHION_MNIST_DIR).
hashlearn falls back to scikit-learn's digits data set until then.
MSG
fi
exit 0
